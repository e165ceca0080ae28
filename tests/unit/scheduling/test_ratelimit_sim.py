"""Rate limits, concurrency limits, SLO accounting and the discrete-event comparison."""

from __future__ import annotations

import random

import pytest

from sagellm_core.api.pool import InferencePoolSpec
from sagellm_core.scheduling.capacity import concurrency_limit
from sagellm_core.scheduling.ratelimit import UserRateLimiter
from sagellm_core.scheduling.registry import default_policies
from sagellm_core.scheduling.simulate import SimJob, simulate
from sagellm_core.scheduling.slo import SloWindow, slo_met

from .helpers import meta


def test_requests_per_minute_rejects_with_retry_after() -> None:
    limiter = UserRateLimiter(requests_per_minute=2, tokens_per_minute=None)
    assert limiter.check("alice", 10, 0.0).allowed
    assert limiter.check("alice", 10, 0.0).allowed
    denied = limiter.check("alice", 10, 0.0)
    assert not denied.allowed
    assert "2 requests per minute" in denied.reason
    assert denied.retry_after_s == pytest.approx(30.0)  # one request refills in 60/2 s
    assert limiter.check("bob", 10, 0.0).allowed  # per user
    assert not limiter.check("alice", 10, 29.0).allowed
    assert limiter.check("alice", 10, 30.0).allowed


@pytest.mark.parametrize(
    ("tpm", "requests", "denied_at", "retry"),
    [
        (600, [200, 200, 200, 200], 3, 20.0),  # 10 tokens/s: 200 more need 20 s
        (600, [600, 1], 1, 0.1),
        (100, [1000, 10], 1, 546.0),  # oversized: passes on a full bucket, leaves 900 debt
    ],
)
def test_tokens_per_minute(tpm: int, requests: list[int], denied_at: int, retry: float) -> None:
    limiter = UserRateLimiter(requests_per_minute=None, tokens_per_minute=tpm)
    results = [limiter.check("u", n, 0.0) for n in requests]
    assert [r.allowed for r in results].index(False) == denied_at
    assert results[denied_at].retry_after_s == pytest.approx(retry)
    assert "tokens per minute" in results[denied_at].reason


def test_a_refused_request_charges_no_bucket() -> None:
    limiter = UserRateLimiter(requests_per_minute=2, tokens_per_minute=100)
    assert limiter.check("u", 100, 0.0).allowed  # 1 request and all tokens left
    for _ in range(5):
        assert not limiter.check("u", 50, 0.0).allowed  # refused on tokens only
    assert limiter.check("u", 1, 0.6).allowed  # so the request bucket still had room


def test_prune_forgets_refilled_users() -> None:
    limiter = UserRateLimiter(requests_per_minute=1, tokens_per_minute=None, max_users=1)
    limiter.check("a", 1, 0.0)
    limiter.check("b", 1, 100.0)  # the table is full: "a" has refilled and is forgotten
    assert not limiter.check("b", 1, 100.0).allowed


def test_slo_met_and_window() -> None:
    m = meta("r", ttft_ms=500, deadline_ms=2000)
    assert slo_met(m, 0.4, 1.9) is True
    assert slo_met(m, 0.6, 1.0) is False
    assert slo_met(m, 0.4, 2.5) is False
    assert slo_met(m, None, 1.0) is False
    assert slo_met(meta("n"), None, 99.0) is None
    window = SloWindow(window_s=10.0)
    assert window.attainment(0.0) is None
    for t, ok in [(0.0, False), (5.0, True), (12.0, True)]:
        window.record(ok, t)
    assert window.attainment(12.0) == pytest.approx(1.0)  # the t=0 miss left the window
    assert (window.attained, window.violated) == (2, 1)


@pytest.mark.parametrize(
    ("spec", "role", "configured", "limit"),
    [
        ({"roles": {"general": {}}}, "General", None, 256),
        ({"roles": {"general": {}}}, "General", 12, 12),
        ({"roles": {"general": {}}, "engine": {"extraArgs": ["--max-num-seqs", "64"]}},
         "General", None, 64),
        ({"roles": {"general": {}}, "engine": {"extraArgs": ["--max-num-seqs=32"]}},
         "General", None, 32),
        ({"roles": {"prefill": {}, "decode": {"maxParallelRequests": 48}}}, "Decode", None, 48),
        ({"roles": {"prefill": {}, "decode": {"maxParallelRequests": 48}}}, "Prefill", None, 256),
    ],
)  # fmt: skip
def test_concurrency_limit(
    spec: dict[str, object], role: str, configured: int | None, limit: int
) -> None:
    pool = InferencePoolSpec.model_validate(
        {"model": {"name": "m", "source": "s", "parameters": 1}, **spec}
    )
    assert concurrency_limit(pool, role, configured) == limit


def test_concurrency_limit_rejects_bad_values() -> None:
    pool = InferencePoolSpec.model_validate(
        {"model": {"name": "m", "source": "s", "parameters": 1}, "roles": {"general": {}},
         "engine": {"extraArgs": ["--max-num-seqs", "lots"]}}
    )  # fmt: skip
    with pytest.raises(ValueError, match="--max-num-seqs"):
        concurrency_limit(pool, "General")
    with pytest.raises(ValueError, match="max_concurrent_requests"):
        concurrency_limit(pool, "General", 0)


def trace(seed: int, n: int = 300) -> list[SimJob]:
    """Overloaded bursts of requests with mixed TTFT SLOs (tight interactive, loose batch)."""
    rng = random.Random(seed)
    jobs, t = [], 0.0
    for i in range(n):
        t += rng.expovariate(2.2)  # ~2.2 req/s against a capacity of 2 req/s
        slo = rng.choice([800, 1500, 10_000, 30_000])
        m = meta(f"r{i}", at=t, ttft_ms=slo, user=f"u{i % 7}")
        jobs.append(SimJob(m, ttft_s=0.1, service_s=rng.uniform(0.5, 1.5)))
    return jobs


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_edf_beats_fifo_on_deadline_misses(seed: int) -> None:
    jobs = trace(seed)
    misses = {}
    for name in ("fifo", "slo_aware"):
        outcomes = simulate(default_policies()[name], jobs, slots=2)
        assert len(outcomes) == len(jobs)
        misses[name] = sum(1 for o in outcomes if o.met is False)
    assert misses["fifo"] > 0
    assert misses["slo_aware"] < 0.8 * misses["fifo"], misses


def test_priority_under_overload_serves_critical_first() -> None:
    jobs = [SimJob(meta(f"b{i}", at=0.0, priority="BACKGROUND"), 0.1, 1.0) for i in range(5)] + [
        SimJob(meta(f"c{i}", at=0.0, priority="CRITICAL"), 0.1, 1.0) for i in range(5)
    ]
    outcomes = simulate(default_policies()["priority"], jobs, slots=1)
    assert [o.request_id[0] for o in outcomes] == ["c"] * 5 + ["b"] * 5


def test_simulation_sheds_when_slo_aware_is_configured_to() -> None:
    from sagellm_core.scheduling.registry import PolicySettings

    jobs = [SimJob(meta(f"r{i}", at=0.0, ttft_ms=1500, prompt=0), 0.1, 1.0) for i in range(6)]
    policy = default_policies(PolicySettings(shed_on_slo_miss=True))["slo_aware"]
    outcomes = simulate(policy, jobs, slots=1)
    shed = [o for o in outcomes if o.shed]
    assert shed
    assert all(o.met is False for o in shed)
    assert sum(1 for o in outcomes if o.met) >= 1
