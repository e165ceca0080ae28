"""``routing``: placement quality of our strategies vs vllm-router policies on a simulated fleet.

One fleet of simulated engines serves every contender. Per workload the fleet's capacity is
measured first (closed loop, client-side round robin, ``engines x max_num_seqs`` concurrent
sessions); each load level then offers Poisson session arrivals at that fraction of capacity. Per
(load, repeat) every contender plays the same seeded sessions (contender order alternates
between rounds); each run's system prompts get a unique salt so no contender inherits the prefix
cache of the one before it. Prefix-cache hit rate comes from the engines' ``/metrics`` deltas.
All routers of a workload are started once, side by side, and stay up across its load levels
(idle ones only poll the engines), which keeps the default run within ~10 minutes on 2 cores.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sagellm_router.bench import fleet as fl
from sagellm_router.bench import plots, report, runs, stats, workloads
from sagellm_router.bench.fleet import Contender
from sagellm_router.bench.options import BenchOptions, Outcome, Progress, Scenario

OURS = ("round_robin", "load_balanced", "power_of_two", "locality", "prefix_aware")
PEERS = ("round_robin", "power_of_two", "cache_aware", "consistent_hash")


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

    def contenders(self, peer_ok: bool) -> list[Contender]:
        ours = [Contender("ours", s) for s in self.ours]
        return ours + ([Contender("peer", p) for p in self.peers] if peer_ok else [])

    def runs(self, peer_ok: bool) -> int:
        n = len(self.workloads) * len(self.loads) * self.repeats * len(self.contenders(peer_ok))
        return n + len(self.workloads)  # + one capacity probe per workload


def config(
    duration: float | None, quick: bool, repeats: int, seed: int, engines: int | None
) -> RoutingConfig:
    """Default (~7-10 min on 2 cores) or ``--quick`` (~1 min) settings."""
    spec = fl.FleetSpec(engines=8, time_scale=4.0, max_num_seqs=32, gpu_blocks=4096)
    cfg = RoutingConfig(spec, ("shared_prefix", "multi_turn"), (0.5, 0.8, 0.95), OURS, PEERS,
                        2.5, repeats, seed)  # fmt: skip
    if quick:
        cfg = replace(cfg, fleet=replace(spec, engines=4), workloads=("shared_prefix",),
                      loads=(0.8,), ours=("round_robin", "prefix_aware"),
                      peers=("round_robin", "cache_aware"), duration_s=3.0,
                      probe_s=runs.QUICK_PROBE_S)  # fmt: skip
    if duration is not None:
        cfg = replace(cfg, duration_s=duration)
    if engines is not None:
        cfg = replace(cfg, fleet=replace(cfg.fleet, engines=engines))
    return cfg


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
        out = runs.sweep(order, targets, cfg.loads, cfg.repeats, sessions_for, measure, progress,
                         {"workload": kind})  # fmt: skip
    return capacity, out


def run(cfg: RoutingConfig, workdir: Path, progress: Progress) -> dict[str, Any]:
    """Run the scenario; returns the raw runs plus settings and notes."""
    peer_ok = fl.peer_available()
    notes = [] if peer_ok else ["vllm-router is not installed: peer contenders skipped "
                                "(pip install vllm-router)"]  # fmt: skip
    out: list[dict[str, Any]] = []
    capacity: dict[str, float] = {}
    with fl.fleet(cfg.fleet, workdir, cfg.seed) as fleet:
        for kind in cfg.workloads:
            capacity[kind], rows = workload_runs(cfg, fleet, kind, cfg.contenders(peer_ok),
                                                 workdir, progress)  # fmt: skip
            out += rows
    notes += [
        f"{r['contender']} {r['workload']} load {r['load']}: {r['errors']:.0f} of "
        f"{r['requests']:.0f} requests failed (see the logs)"
        for r in out
        if r["errors"]
    ]
    settings = {"fleet": vars(cfg.fleet), "workloads": list(cfg.workloads),
                "loads": list(cfg.loads), "duration_s": cfg.duration_s, "repeats": cfg.repeats,
                "seed": cfg.seed, "capacity_req_s": capacity}  # fmt: skip
    return {"scenario": "routing", "settings": settings, "notes": notes, "runs": out}


COLUMNS = ("workload", "load", "contender", "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms",
           "itl_p99_ms", "output_tok_s", "prefix_hit_rate", "errors",
           "output_tok_s_vs_best_peer", "ttft_p90_ms_vs_best_peer")  # fmt: skip
RATIO_METRICS = ("output_tok_s", "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "itl_p99_ms",
                 "prefix_hit_rate")  # fmt: skip


class RoutingScenario(Scenario):
    name = "routing"

    def _config(self, opts: BenchOptions) -> RoutingConfig:
        return config(opts.duration, opts.quick, opts.repeats, opts.seed, opts.engines)

    def steps(self, opts: BenchOptions) -> int:
        return self._config(opts).runs(fl.peer_available())

    def execute(self, opts: BenchOptions, out: Path, workdir: Path, progress: Progress) -> Outcome:
        result = run(self._config(opts), workdir, progress)
        summary = report.summarize(result["runs"], ("workload", "load", "contender"), RATIO_METRICS)
        return Outcome(result, summary, COLUMNS, plots.routing_plots(summary, out))
