"""``pd``: General vs Prefill/Decode-separated serving on the same number of simulated GPUs.

One fleet of 4 simulated engines (``llama-3.1-8b-h100``, time scale 4, every engine started with
a NixlConnector ``kv_both`` transfer config so it can play either role; the router decides who
prefills). Contenders are our router (``load_balanced``) with different pool layouts over the
same 4 engines: ``general`` (4 General), ``1p3d-fixed`` (1 Prefill + 3 Decode, fixed threshold
800 prompt tokens, counted as the simulator counts them), ``1p3d-auto`` (the same with
``pdThresholdMode: Auto``) and ``2p2d-fixed``. Workloads: ``long_prompt`` (1.5-4k-token prompts,
16-64-token answers) and ``pd_mixed`` (30 % of those, 70 % chat with 64-256-token answers), at
50 % and 90 % of the General fleet's measured capacity. The simulator charges a KV transfer
(25 GB/s + 2 ms per request, modelled) on the decode side; see docs/simulator.md.

The routers of a workload stay up across its load levels, so Auto's threshold carries over
from one run to the next; its tuning is sped up to fit runs of seconds (``cooldown_s`` 1,
``min_samples`` 4, ``explore_every`` 4). Per run: output tokens/s, TTFT p50/p99, ITL p99, and
from the router's metrics how many requests went prefill-then-decode, fell back, and the
threshold at the end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sagellm_router.bench import fleet as fl
from sagellm_router.bench import plots, report, runs, stats, workloads
from sagellm_router.bench.fleet import Contender
from sagellm_router.bench.options import (
    BenchOptions,
    Outcome,
    Progress,
    Scenario,
    with_overrides,
)

KV_BOTH = json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_both"})
AUTO_TUNING = {"cooldown_s": 1.0, "min_samples": 4, "explore_every": 4}
# label -> (prefill engines, threshold mode); 0 prefill engines = all General
LAYOUTS = {"general": (0, "Fixed"), "1p3d-fixed": (1, "Fixed"), "1p3d-auto": (1, "Auto"),
           "2p2d-fixed": (2, "Fixed")}  # fmt: skip
COLUMNS = ("workload", "load", "contender", "output_tok_s", "ttft_p50_ms", "ttft_p99_ms",
           "itl_p50_ms", "itl_p99_ms", "pd_share", "pd_fallbacks", "pd_threshold",
           "errors")  # fmt: skip


@dataclass(frozen=True)
class PdConfig:
    fleet: fl.FleetSpec
    workloads: tuple[str, ...]
    loads: tuple[float, ...]
    layouts: tuple[str, ...]
    duration_s: float
    repeats: int
    seed: int
    probe_s: float = runs.PROBE_S

    def contenders(self) -> list[Contender]:
        return [layout_contender(name, self.fleet.engines) for name in self.layouts]


def config(opts: BenchOptions) -> PdConfig:
    """Default (~5 min on 2 cores) or ``--quick`` (~1.5 min) settings."""
    spec = fl.FleetSpec(engines=4, time_scale=4.0, max_num_seqs=32,
                        extra=("--kv-transfer-config", KV_BOTH))  # fmt: skip
    cfg = PdConfig(spec, ("long_prompt", "pd_mixed"), (0.5, 0.9), tuple(LAYOUTS), 5.0,
                   opts.repeats, opts.seed)  # fmt: skip
    if opts.quick:
        cfg = replace(cfg, workloads=("pd_mixed",), loads=(0.8,),
                      layouts=("general", "1p3d-fixed", "1p3d-auto"), duration_s=4.0,
                      probe_s=runs.QUICK_PROBE_S)  # fmt: skip
    return with_overrides(cfg, opts)


def layout_contender(label: str, engines: int) -> Contender:
    """Our router over ``engines`` engines laid out as ``label`` (see ``LAYOUTS``)."""
    prefill, mode = LAYOUTS[label]
    if prefill and prefill >= engines:
        raise fl.BenchError(f"{label} needs more than {prefill} engines, got {engines}")
    roles = ["General"] * engines if not prefill else (
        ["Prefill"] * prefill + ["Decode"] * (engines - prefill))  # fmt: skip
    options = {"roles": roles,
               "pool": {"scheduling": {"pdThresholdMode": mode, "pdThresholdInputTokens": 800}},
               "config": {"pd": {"auto": AUTO_TUNING}}}  # fmt: skip
    return Contender("ours", "load_balanced", label=label, options=options)


def pd_counters(target: str) -> dict[str, float]:
    """Router PD counters: requests by path, fallbacks, and the threshold gauge."""
    out = {"pd": 0.0, "direct": 0.0, "fallbacks": 0.0, "threshold": float("nan")}
    for key, value in fl.scrape(target).items():
        if key.startswith("sagellm_router_pd_requests_total"):
            out["pd" if 'path="pd"' in key else "direct"] += value
        elif key.startswith("sagellm_router_pd_fallbacks_total"):
            out["fallbacks"] += value
        elif key.startswith("sagellm_router_pd_threshold_tokens"):
            out["threshold"] = value
    return out


def one_run(
    cfg: PdConfig, fleet: fl.Fleet, target: list[str], sessions: list[dict[str, Any]],
    workdir: Path, tag: str,
) -> dict[str, float]:  # fmt: skip
    fleet.wait_idle()
    before = pd_counters(target[0])
    result = runs.open_run(target, sessions, workdir, tag, cfg.duration_s,
                           30.0 * cfg.fleet.time_scale)  # fmt: skip
    after = pd_counters(target[0])
    routed = (after["pd"] - before["pd"]) + (after["direct"] - before["direct"])
    metrics = stats.run_metrics(result)
    metrics["pd_share"] = (after["pd"] - before["pd"]) / routed if routed else float("nan")
    metrics["pd_fallbacks"] = after["fallbacks"] - before["fallbacks"]
    metrics["pd_threshold"] = after["threshold"]
    return metrics


def workload_runs(
    cfg: PdConfig, fleet: fl.Fleet, kind: str, workdir: Path, progress: Progress
) -> tuple[float, list[dict[str, Any]]]:
    """Capacity of the fleet (all General, direct) on ``kind``, then every run of it."""
    capacity = runs.measure_capacity(fleet, cfg.fleet, kind, workdir, cfg.seed, cfg.probe_s)
    progress(1)

    def sessions_for(load: float, rep: int) -> list[dict[str, Any]]:
        params = workloads.WorkloadParams(rate=load * capacity, duration_s=cfg.duration_s,
                                          seed=cfg.seed + rep,
                                          time_scale=cfg.fleet.time_scale)  # fmt: skip
        return [s.to_dict() for s in workloads.generate(kind, params)]

    def measure(c: Contender, target: list[str], sessions: list[dict[str, Any]], tag: str) -> Any:
        return one_run(cfg, fleet, target, sessions, workdir, tag)

    order = cfg.contenders()
    with fl.routers(order, fleet.urls, workdir) as targets:
        out = runs.sweep(order, targets, cfg.loads, cfg.repeats, sessions_for, measure, progress,
                         {"workload": kind})  # fmt: skip
    return capacity, out


def run(cfg: PdConfig, workdir: Path, progress: Progress) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    capacity: dict[str, float] = {}
    with fl.fleet(cfg.fleet, workdir, cfg.seed) as fleet:
        for kind in cfg.workloads:
            capacity[kind], rows = workload_runs(cfg, fleet, kind, workdir, progress)
            out += rows
    settings = {"fleet": vars(cfg.fleet), "workloads": list(cfg.workloads),
                "loads": list(cfg.loads), "layouts": {k: LAYOUTS[k] for k in cfg.layouts},
                "duration_s": cfg.duration_s, "repeats": cfg.repeats, "seed": cfg.seed,
                "capacity_req_s": capacity, "auto_tuning": AUTO_TUNING}  # fmt: skip
    notes = [f"{r['contender']} {r['workload']} load {r['load']}: {r['errors']:.0f} of "
             f"{r['requests']:.0f} requests failed" for r in out if r["errors"]]  # fmt: skip
    return {"scenario": "pd", "settings": settings, "notes": notes, "runs": out}


class PdScenario(Scenario):
    name = "pd"

    def steps(self, opts: BenchOptions) -> int:
        cfg = config(opts)
        n = len(cfg.workloads) * len(cfg.loads) * len(cfg.layouts) * cfg.repeats
        return n + len(cfg.workloads)

    def execute(self, opts: BenchOptions, out: Path, workdir: Path, progress: Progress) -> Outcome:
        result = run(config(opts), workdir, progress)
        summary = report.summarize(result["runs"], ("workload", "load", "contender"), ())
        return Outcome(result, summary, COLUMNS, plots.pd_plots(summary, out))
