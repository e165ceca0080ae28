"""``overhead``: what a router costs - requests/s per router core, added latency, streaming relay.

Reuses ``bench/router_overhead.py`` of the source checkout (its raw-asyncio fake engine, from
``bench/overhead_engine.py``, and keep-alive load loops). Layout on 2 cores: the router under
test is pinned to CPU 0; the fake engine, the simulator and the load generators run on CPU 1.
Per target (direct, each of our strategies, each vllm-router policy):

* saturation: closed loop, 32 keep-alive connections (like ``wrk -c 32``) -> ``rps``
  (requests/s = per router core) and the latency of those requests, ``sat_p50_ms``,
  ``sat_p99_ms`` and ``sat_p99_p50`` (a ratio well above ~2 means event-loop stalls, not cost
  per request, set the tail);
* ``p50_ms``/``p99_ms`` at an open-loop ``rate`` (200 req/s) and ``added_*`` = router - direct;
* ``stream_tok_s``: output tokens/s relayed to 64 concurrent streaming clients from one simulated
  engine (``--sim-time-scale 0.05``), through the router or direct.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from sagellm_router.bench import fleet as fl
from sagellm_router.bench import plots, report, stats, workloads
from sagellm_router.bench.fleet import BenchError, Contender
from sagellm_router.bench.options import BenchOptions, Outcome, Progress, Scenario

SCRIPT = Path(__file__).resolve().parents[4] / "bench" / "router_overhead.py"
OURS = ("round_robin", "load_balanced", "power_of_two", "locality", "prefix_aware")
PEERS = ("round_robin", "power_of_two", "cache_aware", "consistent_hash")
COLUMNS = ("contender", "rps", "sat_p50_ms", "sat_p99_ms", "sat_p99_p50", "p50_ms", "p99_ms",
           "added_p50_ms", "added_p99_ms", "stream_tok_s", "rps_vs_best_peer", "rps_vs_peer_same",
           "sat_p99_vs_peer_same")  # fmt: skip


def load_script() -> ModuleType:
    if not SCRIPT.exists():
        raise BenchError(f"{SCRIPT} not found: the overhead scenario runs from a source checkout")
    spec = importlib.util.spec_from_file_location("router_overhead", SCRIPT)
    if spec is None or spec.loader is None:
        raise BenchError(f"cannot load {SCRIPT}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def pinned(cpus: set[int]) -> Iterator[None]:
    """Pin this process to ``cpus`` for the block (no-op on 1 CPU or without affinity)."""
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def contenders(quick: bool) -> list[Contender]:
    ours, peers = (
        (("round_robin", "prefix_aware"), ("round_robin", "cache_aware"))
        if quick
        else (OURS, PEERS)
    )
    out = [Contender("direct", "")] + [Contender("ours", s) for s in ours]
    return out + ([Contender("peer", p) for p in peers] if fl.peer_available() else [])


def measure(ro: ModuleType, url: str, seconds: float, bodies: list[bytes]) -> dict[str, float]:
    port = int(url.rsplit(":", 1)[1])

    async def both() -> dict[str, float]:
        rps, _, sat = await ro.closed_loop(port, seconds, 32, bodies)
        row = {"rps": rps, "sat_p50_ms": ro.pct(sat, 0.5), "sat_p99_ms": ro.pct(sat, 0.99)}
        row["sat_p99_p50"] = stats.ratio(row["sat_p99_ms"], row["sat_p50_ms"])
        try:
            lat = await ro.open_loop(port, 200.0, seconds, bodies)
        except IndexError:  # more than its 32 connections were busy: latency went past 160 ms
            return {**row, "p50_ms": math.nan, "p99_ms": math.nan, "open_loop_failed": 1.0}
        return {**row, "p50_ms": ro.pct(lat, 0.5), "p99_ms": ro.pct(lat, 0.99)}

    return asyncio.run(both())


def stream_rate(sim_urls: list[str], targets: list[str], seconds: float, workdir: Path) -> float:
    params = workloads.WorkloadParams(rate=100.0, duration_s=3.0, seed=7)
    sessions = [s.to_dict() for s in workloads.generate("short_chat", params)]
    spec = {"targets": targets, "model": fl.MODEL, "sessions": sessions, "mode": "closed",
            "concurrency": 64, "duration_s": seconds}  # fmt: skip
    result = fl.run_loadgen(spec, workdir, "stream", timeout=seconds * 10 + 60)
    return stats.run_metrics(result)["output_tok_s"]


def run(opts: BenchOptions, workdir: Path, progress: Progress) -> dict[str, Any]:
    ro = load_script()
    seconds = opts.duration or (1.5 if opts.quick else 4.0)
    bodies = ro.make_bodies(4096, seed=opts.seed + 1)
    ports = fl.free_ports(ro.ENGINE_PORTS)
    engine = fl.spawn(ro.engine_argv(ports), workdir / "fake-engine.log", {1})
    fake = [f"http://127.0.0.1:{p}" for p in ports]
    sim_spec = fl.FleetSpec(engines=2, profile="tiny", time_scale=0.05, max_num_seqs=256,
                            max_model_len=4096)  # fmt: skip
    runs: list[dict[str, Any]] = []
    try:
        ro.wait_port(ports[-1])
        with pinned({1}), fl.fleet(sim_spec, workdir, opts.seed) as sim:
            for rep in range(opts.repeats):
                order = contenders(opts.quick)
                order = order if rep % 2 == 0 else [order[0], *reversed(order[1:])]
                for c in order:
                    with fl.router(c, fake, workdir, cpus={0}, model="bench") as targets:
                        row = measure(ro, targets[0], seconds, bodies)
                    with fl.router(c, sim.urls, workdir, cpus={0}) as targets:
                        row["stream_tok_s"] = stream_rate(sim.urls, targets, seconds, workdir)
                    runs.append({"contender": c.name, "kind": c.kind, "strategy": c.strategy,
                                 "repeat": rep, **row})  # fmt: skip
                    progress(1)
    finally:
        fl.stop([engine])
    _added(runs)
    notes = [] if fl.peer_available() else ["vllm-router is not installed: peer rows skipped"]
    notes += [
        f"{r['contender']} (repeat {r['repeat']}): open loop at 200 req/s needed more than 32 "
        "connections (latency > 160 ms); p50/p99 not measured"
        for r in runs
        if r.get("open_loop_failed")
    ]
    settings = {"seconds": seconds, "connections": 32, "open_loop_rate": 200.0,
                "stream_concurrency": 64, "repeats": opts.repeats, "router_cpu": 0}  # fmt: skip
    return {"scenario": "overhead", "settings": settings, "notes": notes, "runs": runs}


def _added(runs: list[dict[str, Any]]) -> None:
    """``added_p50_ms``/``added_p99_ms``: each run's latency minus direct's of the same repeat."""
    direct = {r["repeat"]: r for r in runs if r["kind"] == "direct"}
    for r in runs:
        base = direct.get(r["repeat"])
        if base is not None:
            r["added_p50_ms"] = r["p50_ms"] - base["p50_ms"]
            r["added_p99_ms"] = r["p99_ms"] - base["p99_ms"]


def same_policy_ratios(rows: list[dict[str, Any]]) -> None:
    """``rps_vs_peer_same`` and ``sat_p99_vs_peer_same``: ours / vllm-router with the
    same-named (or nearest) policy."""
    twin = {"round_robin": "round_robin", "power_of_two": "power_of_two",
            "prefix_aware": "cache_aware", "locality": "consistent_hash"}  # fmt: skip
    peers = {r["contender"].split("/", 1)[1]: r for r in rows if r["kind"] == "peer"}
    for r in rows:
        match = peers.get(twin.get(r["contender"].split("/", 1)[-1], ""))
        if r["kind"] == "ours" and match is not None:
            r["rps_vs_peer_same"] = stats.ratio(r["rps"], match["rps"])
            r["sat_p99_vs_peer_same"] = stats.ratio(r["sat_p99_ms"], match["sat_p99_ms"])


class OverheadScenario(Scenario):
    name = "overhead"

    def steps(self, opts: BenchOptions) -> int:
        return len(contenders(opts.quick)) * opts.repeats

    def execute(self, opts: BenchOptions, out: Path, workdir: Path, progress: Progress) -> Outcome:
        result = run(opts, workdir, progress)
        summary = report.summarize(result["runs"], ("contender",), ("rps", "stream_tok_s"))
        same_policy_ratios(summary)
        panels = (("rps", "req/s per router core"),
                  ("sat_p99_ms", "p99 latency at saturation, 32 conns (ms)"),
                  ("added_p99_ms", "added p99 latency at 200 req/s (ms)"),
                  ("stream_tok_s", "streamed tokens/s, 64 streams"))  # fmt: skip
        png = plots.bar_plots(summary, panels, "router overhead (router pinned to 1 core)",
                              out / "overhead.png")  # fmt: skip
        return Outcome(result, summary, COLUMNS, png)
