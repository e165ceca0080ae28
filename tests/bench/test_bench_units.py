"""Pure parts of the benchmark harness: workloads, statistics, summaries."""

from __future__ import annotations

import math

import pytest

from sagellm_router.bench import report, stats, workloads
from sagellm_router.bench.workloads import WorkloadParams


@pytest.mark.parametrize("kind", sorted(workloads.WORKLOADS))
def test_workloads_are_seeded(kind: str) -> None:
    params = WorkloadParams(rate=20.0, duration_s=3.0, seed=5)
    first = workloads.generate(kind, params)
    assert first == workloads.generate(kind, params)
    assert first != workloads.generate(kind, WorkloadParams(rate=20.0, duration_s=3.0, seed=6))
    assert all(0 <= s.start_s < 3.0 and s.turns for s in first)


def test_shared_prefix_tenants_share_system_prompts() -> None:
    sessions = workloads.generate("shared_prefix", WorkloadParams(rate=100.0, duration_s=2.0))
    by_tenant: dict[int, set[str]] = {}
    for s in sessions:
        by_tenant.setdefault(s.tenant, set()).add(s.system)
    assert all(len(prompts) == 1 for prompts in by_tenant.values())
    assert len(by_tenant) < len(sessions)


def test_kv_pressure_prefixes_exceed_the_routing_fleets_kv() -> None:
    import random

    from sagellm_router.bench.scenarios.routing import config

    fleet = config(None, False, 1, 0, None).fleet
    kv_tokens = fleet.engines * (fleet.gpu_blocks or 0) * 16  # the simulator's block size
    prefixes = [random.Random(f"kv{t}").randint(*workloads.KV_PRESSURE_PREFIX_TOKENS)
                for t in range(workloads.KV_PRESSURE_TENANTS)]  # fmt: skip
    assert sum(prefixes) > kv_tokens
    sessions = workloads.generate("kv_pressure", WorkloadParams(rate=100.0, duration_s=2.0))
    assert {len(s.system.split()) - 4 for s in sessions} <= set(prefixes)


def test_poisson_rate_is_close_to_target() -> None:
    import random

    starts = workloads.poisson_starts(random.Random(1), 50.0, 200.0)
    assert 0.95 < len(starts) / (50.0 * 200.0) < 1.05


def test_slo_mix_sets_headers_scaled_by_time_scale() -> None:
    params = WorkloadParams(rate=50.0, duration_s=2.0, time_scale=4.0, mix=workloads.SLO_MIX)
    sessions = workloads.generate("short_chat", params)
    interactive = [s for s in sessions if s.klass == "interactive"]
    assert interactive
    assert interactive[0].headers == {"x-priority": "HIGH", "x-slo-ttft-ms": "1200"}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"rate": 0.0}, "rate and duration"),
        ({"mix": (workloads.TrafficClass("a", 0.5),)}, "sum to 1"),
    ],
)
def test_bad_workload_params(bad: dict[str, object], message: str) -> None:
    kwargs: dict[str, object] = {"rate": 1.0, "duration_s": 1.0, **bad}
    with pytest.raises(ValueError, match=message):
        WorkloadParams(**kwargs)  # type: ignore[arg-type]


def test_unknown_workload() -> None:
    with pytest.raises(ValueError, match="unknown workload 'nope'"):
        workloads.generate("nope", WorkloadParams(rate=1.0, duration_s=1.0))


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([1.0], 99, 1.0), ([1.0, 2.0, 3.0, 4.0], 50, 2.5), ([4.0, 1.0, 3.0, 2.0], 100, 4.0)],
)
def test_percentile(values: list[float], q: float, expected: float) -> None:
    assert stats.percentile(values, q) == expected


def test_percentile_empty_is_nan() -> None:
    assert math.isnan(stats.percentile([], 50))


def test_run_metrics_counts_errors_and_throughput() -> None:
    result = {
        "fields": ["sid", "turn", "klass", "start", "ttft", "e2e", "out_tokens", "prompt_tokens",
                   "error"],
        "records": [[0, 0, "a", 0.0, 0.1, 1.0, 10, 5, None],
                    [1, 0, "a", 1.0, 0.2, 1.0, 30, 5, None],
                    [2, 0, "a", 1.5, None, None, 0, 0, "HTTP 503"]],
        "itl": [0.01, 0.02],
    }  # fmt: skip
    m = stats.run_metrics(result)
    assert m["requests"] == 3
    assert m["errors"] == 1
    assert m["output_tok_s"] == pytest.approx(40 / 2.0)
    assert m["ttft_p50_ms"] == pytest.approx(150.0)
    assert stats.class_attainment(result, {"a": 150.0}) == {"slo_a": pytest.approx(1 / 3)}


def _closed_loop(done: list[tuple[float, float]]) -> dict[str, object]:
    fields = ["sid", "turn", "klass", "start", "ttft", "e2e", "out_tokens", "prompt_tokens",
              "error"]  # fmt: skip
    rows = [[i, 0, "a", start, 0.1, end - start, 1, 1, None] for i, (start, end) in enumerate(done)]
    return {"fields": fields, "records": rows, "itl": []}


def test_saturated_rate_excludes_ramp_and_drain() -> None:
    # 2 workers, 1 s requests, probe of 4 s: completions at 1, 1, 2, 2, 3, 3, 4, 4 (+ 2 draining
    # requests started just before the deadline end at 4.9): steady state is 2 per second,
    # counted over (2, 4]
    done = [(0, 1), (0, 1), (1, 2), (1, 2), (2, 3), (2, 3), (3, 4), (3, 4), (3.9, 4.9), (3.9, 4.9)]
    result = _closed_loop(done)
    assert stats.saturated_rate(result, 4.0) == pytest.approx(2.0)
    assert stats.run_metrics(result)["req_s"] == pytest.approx(10 / 4.9)  # the whole-span figure


def test_saturated_rate_falls_back_to_the_whole_span() -> None:
    result = _closed_loop([(0.0, 5.0), (0.0, 6.0)])  # nothing finished inside (2, 4]
    assert stats.saturated_rate(result, 4.0) == pytest.approx(2 / 6.0)


def test_summary_ratios_use_best_peer_per_group() -> None:
    runs = [
        {"load": 0.8, "contender": "ours/x", "kind": "ours", "repeat": 0, "tok": 12.0, "lat": 5.0},
        {"load": 0.8, "contender": "ours/x", "kind": "ours", "repeat": 1, "tok": 8.0, "lat": 7.0},
        {"load": 0.8, "contender": "peer/a", "kind": "peer", "repeat": 0, "tok": 5.0, "lat": 10.0},
        {"load": 0.8, "contender": "peer/b", "kind": "peer", "repeat": 0, "tok": 4.0, "lat": 12.0},
    ]
    summary = report.summarize(runs, ("load", "contender"), ("tok", "lat"), ("tok",))
    rows = {r["contender"]: r for r in summary}
    ours = rows["ours/x"]
    assert (ours["tok"], ours["tok_min"], ours["tok_max"]) == (10.0, 8.0, 12.0)
    assert ours["tok_vs_best_peer"] == pytest.approx(2.0)
    assert ours["lat_vs_best_peer"] == pytest.approx(0.6)
    assert "tok_vs_best_peer" not in rows["peer/a"]


def test_shared_prefix_system_prompts_are_1k_to_2k_tokens() -> None:
    sessions = workloads.generate("shared_prefix", WorkloadParams(rate=200.0, duration_s=2.0))
    lengths = {s.tenant: len(s.system.split()) for s in sessions}
    assert all(1000 <= n - 3 <= 2000 for n in lengths.values())  # 3 header words
    assert max(lengths.values()) - min(lengths.values()) > 300  # lengths differ per tenant


@pytest.mark.parametrize(
    ("kind", "long_share"), [("long_prompt", (1.0, 1.0)), ("pd_mixed", (0.2, 0.4))]
)
def test_pd_workloads_mix_long_and_short_prompts(
    kind: str, long_share: tuple[float, float]
) -> None:
    sessions = workloads.generate(kind, WorkloadParams(rate=200.0, duration_s=2.0, seed=3))
    long = [s for s in sessions if len(s.system.split()) >= 1500]
    assert long_share[0] <= len(long) / len(sessions) <= long_share[1]
    assert all(16 <= s.turns[0].max_tokens <= 64 for s in long)
    assert all(len(s.turns) == 1 for s in sessions)


def test_summary_rows_follow_the_first_round_order() -> None:
    rounds = ((0.5, "abc"), (0.8, "cba"), (0.2, "abc"))
    runs = [{"load": load, "contender": c, "kind": "ours", "repeat": 0, "x": 1.0}
            for load, order in rounds for c in order]  # fmt: skip
    rows = report.summarize(runs, ("load", "contender"), ())
    assert [(r["load"], r["contender"]) for r in rows] == [
        (load, c) for load in (0.5, 0.8, 0.2) for c in "abc"]  # fmt: skip
