"""``slo``: admission policies under overload - does HIGH-priority traffic keep its TTFT SLO?

One fleet of simulated engines (4, ``llama-3.1-8b-h100``, time scale 4, ``--max-num-seqs 8``)
and our router in front of it with one scheduling policy per contender: ``fifo``, ``priority``,
``slo_aware``, ``adaptive``. Every endpoint gets ``max_concurrency`` = the engines'
``max_num_seqs``, so requests beyond the fleet's batch slots wait in the router's admission queue
(where the policy orders them), not inside the engines. Traffic: ``short_chat`` at 1.5 x the
fleet's measured capacity, classes from ``workloads.OVERLOAD_MIX`` (20 % HIGH with a 300 ms TTFT
objective, 50 % NORMAL with 5 s, 30 % LOW without; simulated ms, sent as wall ms x time scale).
Adaptive's minimum dwell per mode is lowered to 1 s (``queue.adaptive_min_dwell_s``; default
30 s) so it can switch within a run. ``priority`` and ``slo_aware`` also run with the engines'
metrics scraped every 0.1 s instead of 1 s (the router counts a slot as taken while a stale
scrape still shows the engine full), to show what that lag costs. Per run: SLO attainment and
TTFT p50/p99 per class, throughput, 429/503 rejections, and for ``adaptive`` the policy in
force at the end.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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

POLICIES = ("fifo", "priority", "slo_aware", "adaptive")
CLASSES = workloads.OVERLOAD_MIX
COLUMNS = ("contender", "slo_high", "slo_normal", "ttft_p50_high_ms", "ttft_p99_high_ms",
           "ttft_p50_normal_ms", "ttft_p99_normal_ms", "ttft_p50_low_ms", "ttft_p99_low_ms",
           "output_tok_s", "rejected_429", "rejected_503", "errors")  # fmt: skip
GOAL_HIGH_MET, GOAL_FIFO_BELOW = 0.95, 0.5
# variants that scrape the engines every 0.1 s instead of 1 s (fresher waiting/KV numbers; the
# router's own in-flight count is always fresh)
FAST_SCRAPE_POLICIES, FAST_SCRAPE_S = ("priority", "slo_aware"), 0.1


@dataclass(frozen=True)
class SloConfig:
    fleet: fl.FleetSpec
    workload: str
    overload: float
    duration_s: float
    repeats: int
    seed: int
    policies: tuple[str, ...] = POLICIES
    probe_s: float = runs.PROBE_S
    fast_scrape: tuple[str, ...] = FAST_SCRAPE_POLICIES  # also run these with FAST_SCRAPE_S

    def contenders(self) -> list[Contender]:
        slots = self.fleet.max_num_seqs
        plain = [policy_contender(p, slots) for p in self.policies]
        return plain + [policy_contender(p, slots, FAST_SCRAPE_S) for p in self.fast_scrape]

    def slo_wall_ms(self) -> dict[str, float | None]:
        scale = self.fleet.time_scale
        return {c.name: None if c.slo_ttft_ms is None else c.slo_ttft_ms * scale for c in CLASSES}


def config(opts: BenchOptions) -> SloConfig:
    """Default (~3 min on 2 cores) or ``--quick`` (~1.5 min, no fast-scrape variants)."""
    spec = fl.FleetSpec(engines=4, time_scale=4.0, max_num_seqs=8)
    cfg = SloConfig(spec, "short_chat", 1.5, 10.0, opts.repeats, opts.seed)
    if opts.quick:
        cfg = replace(cfg, fleet=replace(spec, engines=2), duration_s=6.0, fast_scrape=(),
                      probe_s=runs.QUICK_PROBE_S)  # fmt: skip
    return with_overrides(cfg, opts)


def policy_contender(policy: str, slots: int, scrape_s: float | None = None) -> Contender:
    """Our router (load_balanced) with scheduling ``policy`` and ``slots`` per endpoint;
    ``scrape_s``: scrape the engines' metrics this often (default: the router's, 1 s)."""
    config: dict[str, Any] = {"queue": {"adaptive_min_dwell_s": 1.0}, "admin": {"enabled": True}}
    label = policy
    if scrape_s is not None:
        config["scrape"] = {"interval_s": scrape_s}
        label = f"{policy}+scrape{scrape_s:g}s"
    options = {"pool": {"scheduling": {"policy": policy}},
               "endpoint": {"max_concurrency": slots}, "config": config}  # fmt: skip
    return Contender("ours", "load_balanced", label=label, options=options)


def active_policy(status: Mapping[str, Any], pool: str = "bench") -> str:
    """The policy in force in ``pool`` of an ``/admin/status`` document, with its reason."""
    found = (status.get("pools") or {}).get(pool) or {}
    detail = found.get("policy_status") or {}
    active = detail.get("active") or found.get("policy") or "?"
    return f"{active} ({detail.get('reason', '')})" if detail else str(active)


def fetch_active_policy(target: str) -> str:
    code, body = fl.http_get(target + "/admin/status")
    return active_policy(json.loads(body)) if code == 200 else f"unknown (HTTP {code})"


def run(cfg: SloConfig, workdir: Path, progress: Progress) -> dict[str, Any]:
    """Measure capacity, then play the same overload once per policy (order alternates)."""
    notes: list[str] = []
    order = cfg.contenders()
    with fl.fleet(cfg.fleet, workdir, cfg.seed) as fleet:
        capacity = runs.measure_capacity(fleet, cfg.fleet, cfg.workload, workdir, cfg.seed,
                                         cfg.probe_s)  # fmt: skip
        progress(1)

        def sessions_for(load: float, rep: int) -> list[dict[str, Any]]:
            rate = load * capacity / workloads.mean_turns(cfg.workload, cfg.seed)
            params = workloads.WorkloadParams(rate=rate, duration_s=cfg.duration_s,
                                              seed=cfg.seed + rep, mix=CLASSES,
                                              time_scale=cfg.fleet.time_scale)  # fmt: skip
            return [s.to_dict() for s in workloads.generate(cfg.workload, params)]

        def measure(c: Contender, target: list[str], sessions: list[dict[str, Any]],
                    tag: str) -> Any:  # fmt: skip
            fleet.wait_idle()
            result = runs.open_run(target, sessions, workdir, tag, cfg.duration_s,
                                   30.0 * cfg.fleet.time_scale)  # fmt: skip
            if c.label == "adaptive":
                notes.append(f"adaptive ({tag}) ended with {fetch_active_policy(target[0])}")
            return {"policy": c.label, **stats.run_metrics(result),
                    **stats.class_metrics(result, cfg.slo_wall_ms())}  # fmt: skip

        with fl.routers(order, fleet.urls, workdir) as targets:
            out = runs.sweep(order, targets, (cfg.overload,), cfg.repeats, sessions_for, measure,
                             progress, {"workload": cfg.workload})  # fmt: skip
    settings = {"fleet": vars(cfg.fleet), "workload": cfg.workload, "overload": cfg.overload,
                "duration_s": cfg.duration_s, "repeats": cfg.repeats, "seed": cfg.seed,
                "capacity_req_s": capacity, "slo_ttft_wall_ms": cfg.slo_wall_ms(),
                "classes": [vars(c) for c in CLASSES]}  # fmt: skip
    return {"scenario": "slo", "settings": settings, "notes": notes, "runs": out}


def goal_note(summary: list[dict[str, Any]]) -> str:
    """Whether slo_aware/priority keep >= 95 % of HIGH within SLO where fifo keeps < 50 %."""
    got = {r["contender"].split("/", 1)[1]: r.get("slo_high", float("nan")) for r in summary}
    fifo = got.get("fifo", float("nan"))
    good = [p for p in ("priority", "slo_aware") if got.get(p, 0.0) >= GOAL_HIGH_MET]
    met = bool(good) and fifo < GOAL_FIFO_BELOW
    parts = ", ".join(f"{p} {v:.0%}" for p, v in got.items())
    return (
        f"goal (priority/slo_aware HIGH >= 95 %, fifo < 50 %): {'met' if met else 'not met'}"
        f" - HIGH within SLO: {parts}"
    )


class SloScenario(Scenario):
    name = "slo"

    def steps(self, opts: BenchOptions) -> int:
        cfg = config(opts)
        return 1 + len(cfg.policies) * cfg.repeats

    def execute(self, opts: BenchOptions, out: Path, workdir: Path, progress: Progress) -> Outcome:
        result = run(config(opts), workdir, progress)
        summary = report.summarize(result["runs"], ("contender",), ())
        result["notes"].append(goal_note(summary))
        panels = (("slo_high", "HIGH: share within TTFT SLO"),
                  ("ttft_p99_high_ms", "HIGH: TTFT p99 (ms, wall)"),
                  ("ttft_p99_normal_ms", "NORMAL: TTFT p99 (ms, wall)"),
                  ("output_tok_s", "output tokens/s (wall)"))  # fmt: skip
        png = plots.bar_plots(summary, panels, "slo - 1.5x overload, 20 % HIGH (policy per bar)",
                              out / "slo.png")  # fmt: skip
        return Outcome(result, summary, COLUMNS, png)
