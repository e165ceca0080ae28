"""Runs shared by the scenarios: the capacity probe, one open-loop run, and the sweep.

``measure_capacity`` is a closed loop straight to the engines with ``engines x max_num_seqs``
workers, each pinned to one engine, for ``PROBE_S`` (``--quick``: ``QUICK_PROBE_S``): the
request rate the fleet completes while saturated (``stats.saturated_rate``: ramp-up and drain
excluded). ``open_run`` plays seeded sessions (Poisson arrivals) against a target with a fresh
salt on every system prompt, so no run inherits the engines' prefix cache from the one before.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sagellm_router.bench import fleet as fl
from sagellm_router.bench import stats, workloads
from sagellm_router.bench.fleet import Contender
from sagellm_router.bench.options import Progress

PROBE_S = 20.0  # at saturation a request takes up to ~8 s of wall time (time scale 4)
QUICK_PROBE_S = 8.0  # --quick: a rougher figure, sooner


def measure_capacity(
    fleet: fl.Fleet, spec: fl.FleetSpec, kind: str, workdir: Path, seed: int, probe_s: float
) -> float:
    """Requests per second the fleet completes at saturation on workload ``kind``."""
    params = workloads.WorkloadParams(rate=200.0, duration_s=2.0, seed=seed + 999,
                                      time_scale=spec.time_scale, salt="[probe] ")  # fmt: skip
    sessions = [s.to_dict() for s in workloads.generate(kind, params)]
    load = {"targets": fleet.urls, "model": fl.MODEL, "sessions": sessions, "mode": "closed",
            "concurrency": spec.engines * spec.max_num_seqs, "duration_s": probe_s}  # fmt: skip
    result = fl.run_loadgen(load, workdir, f"capacity-{kind}", timeout=probe_s * 10 + 60)
    fleet.wait_idle()
    return stats.saturated_rate(result, probe_s)


def open_run(
    targets: list[str],
    sessions: list[dict[str, Any]],
    workdir: Path,
    tag: str,
    duration_s: float,
    drain_s: float,
) -> dict[str, Any]:
    """Play ``sessions`` open loop against ``targets`` (salted); the load generator's result."""
    salt = f"[run {uuid.uuid4().hex[:12]}] "
    salted = [{**s, "system": salt + s["system"]} for s in sessions]
    spec = {"targets": targets, "model": fl.MODEL, "sessions": salted, "mode": "open",
            "drain_timeout_s": drain_s}  # fmt: skip
    return fl.run_loadgen(spec, workdir, tag, timeout=duration_s + drain_s + 60.0)


def router_cpu(
    before: float | None, after: float | None, metrics: Mapping[str, float]
) -> dict[str, float]:
    """``router_cpu_us_per_req``: the router processes' CPU time over a run (the engines'
    scrapes, KV events and every request's relay included, as deployed) per request sent;
    {} when it cannot be read. /proc counts in clock ticks (10 ms), ~5 % of a run here."""
    requests = metrics.get("requests", 0.0)
    if before is None or after is None or requests <= 0:
        return {}
    return {"router_cpu_us_per_req": (after - before) / requests * 1e6}


SessionsFor = Callable[[float, int], list[dict[str, Any]]]
Measure = Callable[[Contender, list[str], list[dict[str, Any]], str], dict[str, float]]


def sweep(
    order: Sequence[Contender],
    targets: fl.RouterSet,
    loads: Sequence[float],
    repeats: int,
    sessions_for: SessionsFor,
    measure: Measure,
    progress: Progress,
    base: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Every (load, repeat, contender) run: the same sessions per (load, repeat) for all
    contenders, contender order reversed every other round, only the measured router running.
    Rows = ``base`` + keys + metrics, with each router's CPU per request (``router_cpu``)."""
    out: list[dict[str, Any]] = []
    for li, load in enumerate(loads):
        for rep in range(repeats):
            sessions = sessions_for(load, rep)
            for c in order if (li + rep) % 2 == 0 else list(reversed(order)):
                tag = "-".join([*map(str, base.values()), str(load), str(rep), c.slug])
                with targets.active(c.name) as target:
                    cpu0 = targets.cpu_seconds(c.name)
                    metrics = measure(c, target, sessions, tag)
                    metrics.update(router_cpu(cpu0, targets.cpu_seconds(c.name), metrics))
                out.append({**base, "load": load, "repeat": rep, "contender": c.name,
                            "kind": c.kind, "strategy": c.strategy, **metrics})  # fmt: skip
                progress(1)
    return out
