"""``routing``: placement quality of our strategies vs vllm-router policies on a simulated fleet.

One fleet of simulated engines serves every contender. Per workload the fleet's capacity is
measured first (closed loop, client-side round robin, ``engines x max_num_seqs`` concurrent
sessions); each load level then offers Poisson session arrivals at that fraction of capacity. Per
(load, repeat) every contender plays the same seeded sessions (contender order alternates
between rounds); each run's system prompts get a unique salt so no contender inherits the prefix
cache of the one before it. Prefix-cache hit rate comes from the engines' ``/metrics`` deltas.
All routers of a workload are started once, side by side, and stay up across its load levels
(idle ones only poll the engines), which keeps the default run within ~10 minutes on 2 cores.

Every engine publishes KV events (``--kv-events-config``, OS-chosen ports) for our ``kv_aware``
and vllm-router's (``peer_kv``: its flags name each engine's sockets) and runs in dev mode
(``VLLM_SERVER_DEV_MODE=1``) for the ``oracle`` plugin (``sagellm_router.bench.oracle``),
whatever contender is measured. With ``replicas`` > 1 the
strategies of ``REPLICATED`` also run as that many identical routers, which the load generator
uses in round robin (``<strategy>-x<N>``); the ``kv_aware`` ones share their picks
(``routing.replica_sync``, as the chart configures replicas).
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sagellm_router.bench import fleet as fl
from sagellm_router.bench import (
    kv_variants,
    oracle,
    peer_kv,
    plots,
    report,
    runs,
    stats,
    workloads,
)
from sagellm_router.bench.fleet import Contender
from sagellm_router.bench.options import BenchOptions, Outcome, Progress, Scenario

OURS = ("round_robin", "load_balanced", "power_of_two", "locality", "prefix_aware", "kv_aware",
        "oracle")  # fmt: skip
PEERS = ("round_robin", "power_of_two", "cache_aware", "kv_aware", "consistent_hash")
REPLICATED = ("prefix_aware", "kv_aware", "kv_aware_events")
KV_EVENTS = ('{"enable_kv_cache_events": true, "publisher": "zmq", "endpoint": "tcp://*:0", '
             '"replay_endpoint": "tcp://*:0"}')  # fmt: skip
ENGINE_ENV = (("VLLM_SERVER_DEV_MODE", "1"),)
WARM_UP_S = 3.0  # after each of our routers' warm-up request (see warm_up)
PLUGINS = {**oracle.PLUGINS, **kv_variants.PLUGINS}  # benchmark-only strategies


def our_strategies() -> list[str]:
    """What ``--strategy`` accepts: the built-ins and the benchmark-only plugins."""
    from sagellm_router.routing.registry import default_strategies

    return [*default_strategies(), *PLUGINS]


def our_contender(strategy: str, replicas: int = 1) -> Contender:
    """Our router with ``strategy`` (``oracle`` loaded as a plugin), ``replicas`` of it."""
    options: dict[str, Any] = {}
    if strategy in PLUGINS:
        options["config"] = {"plugins": [PLUGINS[strategy]]}
    if replicas > 1:
        options["replicas"] = replicas
        options["replica_sync"] = strategy.startswith("kv_aware")
    return Contender("ours", strategy, f"{strategy}-x{replicas}" if replicas > 1 else "", options)


@dataclass(frozen=True)
class RoutingConfig:
    fleet: fl.FleetSpec
    workloads: tuple[str, ...]
    loads: tuple[float, ...]
    ours: tuple[str, ...]
    peers: tuple[str, ...]
    duration_s: float
    repeats: int
    seed: int
    probe_s: float = runs.PROBE_S
    replicas: int = 1
    warm_up_s: float = WARM_UP_S

    def contenders(self, peer_ok: bool) -> list[Contender]:
        ours = [our_contender(s) for s in self.ours]
        if self.replicas > 1:
            ours += [our_contender(s, self.replicas) for s in self.ours if s in REPLICATED]
        return ours + ([Contender("peer", p) for p in self.peers] if peer_ok else [])

    def runs(self, peer_ok: bool) -> int:
        n = len(self.workloads) * len(self.loads) * self.repeats * len(self.contenders(peer_ok))
        return n + len(self.workloads)  # + one capacity probe per workload


def config(
    duration: float | None, quick: bool, repeats: int, seed: int, engines: int | None
) -> RoutingConfig:
    """Default (~10 min on 2 cores) or ``--quick`` (~2 min) settings."""
    spec = fl.FleetSpec(engines=8, time_scale=4.0, max_num_seqs=32, gpu_blocks=4096,
                        extra=("--kv-events-config", KV_EVENTS), env=ENGINE_ENV)  # fmt: skip
    cfg = RoutingConfig(spec, ("shared_prefix", "multi_turn"), (0.5, 0.8, 0.95), OURS, PEERS,
                        2.5, repeats, seed)  # fmt: skip
    if quick:
        cfg = replace(cfg, fleet=replace(spec, engines=4), workloads=("shared_prefix",),
                      loads=(0.8,), ours=("round_robin", "prefix_aware", "kv_aware", "oracle"),
                      peers=("round_robin", "cache_aware", "kv_aware"), duration_s=3.0,
                      probe_s=runs.QUICK_PROBE_S, warm_up_s=1.0)  # fmt: skip
    if duration is not None:
        cfg = replace(cfg, duration_s=duration)
    if engines is not None:
        cfg = replace(cfg, fleet=replace(cfg.fleet, engines=engines))
    return cfg


def config_for(opts: BenchOptions) -> RoutingConfig:
    """``config`` narrowed by ``--workload``, ``--load``, ``--strategy`` and ``--replicas``."""
    cfg = config(opts.duration, opts.quick, opts.repeats, opts.seed, opts.engines)
    if opts.strategies:
        cfg = replace(cfg, ours=tuple(dict.fromkeys(opts.strategies)))
    if opts.peers:
        cfg = replace(cfg, peers=tuple(dict.fromkeys(opts.peers)))
    unknown = sorted(set(opts.workloads) - set(workloads.WORKLOADS))
    if unknown:
        raise fl.BenchError(f"routing: unknown workload(s) {unknown}; "
                            f"known: {sorted(workloads.WORKLOADS)}")  # fmt: skip
    if opts.workloads:
        cfg = replace(cfg, workloads=tuple(dict.fromkeys(opts.workloads)))
    if opts.loads:
        cfg = replace(cfg, loads=tuple(sorted(set(opts.loads))))
    return replace(cfg, replicas=opts.replicas)


def one_run(
    cfg: RoutingConfig,
    fleet: fl.Fleet,
    targets: list[str],
    sessions: list[dict[str, Any]],
    workdir: Path,
    tag: str,
) -> dict[str, float]:
    fleet.wait_idle()
    hits0, queries0 = fleet.prefix_counters()
    drain_s = 30.0 * cfg.fleet.time_scale
    result = runs.open_run(targets, sessions, workdir, tag, cfg.duration_s, drain_s)
    hits1, queries1 = fleet.prefix_counters()
    metrics = stats.run_metrics(result)
    dq = queries1 - queries0
    metrics["prefix_hit_rate"] = (hits1 - hits0) / dq if dq > 0 else float("nan")
    return metrics


def workload_runs(
    cfg: RoutingConfig, fleet: fl.Fleet, kind: str, order: list[Contender], workdir: Path,
    progress: Progress,
) -> tuple[float, list[dict[str, Any]]]:  # fmt: skip
    """Capacity of the fleet on ``kind``, then every (load, repeat, contender) run of it."""
    capacity = runs.measure_capacity(fleet, cfg.fleet, kind, workdir, cfg.seed, cfg.probe_s)
    progress(1)
    turns = workloads.mean_turns(kind, cfg.seed)

    def sessions_for(load: float, rep: int) -> list[dict[str, Any]]:
        params = workloads.WorkloadParams(rate=load * capacity / turns, duration_s=cfg.duration_s,
                                          seed=cfg.seed + rep,
                                          time_scale=cfg.fleet.time_scale)  # fmt: skip
        return [s.to_dict() for s in workloads.generate(kind, params)]

    def measure(c: Contender, target: list[str], sessions: list[dict[str, Any]], tag: str) -> Any:
        return {"offered_req_s": sum(len(s["turns"]) for s in sessions) / cfg.duration_s,
                **one_run(cfg, fleet, target, sessions, workdir, tag)}  # fmt: skip

    with fl.routers(order, fleet.urls, workdir) as targets:
        warm_up([c for c in order if c.kind == "ours"], targets, cfg.warm_up_s)
        out = runs.sweep(order, targets, cfg.loads, cfg.repeats, sessions_for, measure, progress,
                         {"workload": kind})  # fmt: skip
    return capacity, out


def warm_up(cs: list[Contender], targets: fl.RouterSet, settle_s: float = WARM_UP_S) -> None:
    """One small request through each of our routers (every replica), then ``settle_s`` before
    it is paused again: strategies that start work on their first pick (``kv_aware`` subscribes
    to the engines' KV events and replays their history) do it before the first measured run,
    as a long-running router would have."""
    body = json.dumps({"model": fl.MODEL, "max_tokens": 1,
                       "messages": [{"role": "user", "content": "warm up"}]}).encode()  # fmt: skip
    for c in cs:
        with targets.active(c.name) as urls:
            for url in urls:
                headers = {"Content-Type": "application/json"}
                req = urllib.request.Request(url + "/v1/chat/completions", body, headers)
                with urllib.request.urlopen(req, timeout=30) as resp:
                    resp.read()
            time.sleep(settle_s)


def run(cfg: RoutingConfig, workdir: Path, progress: Progress) -> dict[str, Any]:
    """Run the scenario; returns the raw runs plus settings and notes."""
    peer_ok = fl.peer_available()
    notes = [] if peer_ok else ["vllm-router is not installed: peer contenders skipped "
                                "(pip install vllm-router)"]  # fmt: skip
    out: list[dict[str, Any]] = []
    capacity: dict[str, float] = {}
    with fl.fleet(cfg.fleet, workdir, cfg.seed) as fleet:
        order = [peer_kv.with_event_sources(c, fleet.urls, cfg.fleet.block_size)
                 for c in cfg.contenders(peer_ok)]  # fmt: skip
        for kind in cfg.workloads:
            capacity[kind], rows = workload_runs(cfg, fleet, kind, order, workdir, progress)
            out += rows
    notes += [
        f"{r['contender']} {r['workload']} load {r['load']}: {r['errors']:.0f} of "
        f"{r['requests']:.0f} requests failed (see the logs)"
        for r in out
        if r["errors"]
    ]
    settings = {"fleet": vars(cfg.fleet), "workloads": list(cfg.workloads),
                "loads": list(cfg.loads), "duration_s": cfg.duration_s, "repeats": cfg.repeats,
                "seed": cfg.seed, "replicas": cfg.replicas,
                "capacity_req_s": capacity}  # fmt: skip
    return {"scenario": "routing", "settings": settings, "notes": notes, "runs": out}


COLUMNS = ("workload", "load", "contender", "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms",
           "itl_p99_ms", "output_tok_s", "prefix_hit_rate", "router_cpu_us_per_req", "errors",
           "output_tok_s_vs_best_peer", "ttft_p90_ms_vs_best_peer",
           "ttft_p90_ms_vs_oracle")  # fmt: skip
RATIO_METRICS = ("output_tok_s", "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "itl_p99_ms",
                 "prefix_hit_rate")  # fmt: skip


class RoutingScenario(Scenario):
    name = "routing"

    def _config(self, opts: BenchOptions) -> RoutingConfig:
        return config_for(opts)

    def steps(self, opts: BenchOptions) -> int:
        return self._config(opts).runs(fl.peer_available())

    def execute(self, opts: BenchOptions, out: Path, workdir: Path, progress: Progress) -> Outcome:
        result = run(self._config(opts), workdir, progress)
        summary = report.summarize(result["runs"], ("workload", "load", "contender"), RATIO_METRICS)
        add_oracle_ratios(summary)
        figures = plots.routing_plots(summary, out) + bar_plots(summary, out)
        figures += plots.replica_plots(summary, out)
        return Outcome(result, summary, COLUMNS, figures)


def add_oracle_ratios(rows: list[dict[str, Any]]) -> None:
    """``ttft_p90_ms_vs_oracle`` on our rows: ours / the oracle's of the same (workload, load)."""
    oracles = {(r["workload"], r["load"]): r for r in rows if r["contender"] == "ours/oracle"}
    for r in rows:
        best = oracles.get((r["workload"], r["load"]))
        if best is not None and r["kind"] == "ours":
            r["ttft_p90_ms_vs_oracle"] = stats.ratio(r["ttft_p90_ms"], best["ttft_p90_ms"])


BAR_PANELS = (("ttft_p90_ms", "TTFT p90 (ms, wall, log scale)"),
              ("output_tok_s", "output tokens/s (wall)"),
              ("prefix_hit_rate", "prefix-cache hit rate"))  # fmt: skip


def bar_plots(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """Per (workload, load): bars per contender (readable where one load level was run)."""
    paths: list[Path] = []
    for workload, load in dict.fromkeys((r["workload"], r["load"]) for r in rows):
        mine = [r for r in rows if (r["workload"], r["load"]) == (workload, load)]
        path = out / f"routing_{workload}_{round(load * 100)}.png"
        title = f"routing - {workload} at {load:.0%} load (blue: ours, orange: vllm-router)"
        paths += plots.bar_plots(mine, BAR_PANELS, title, path, log=("ttft_p90_ms",))
    return paths
