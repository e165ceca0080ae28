"""Table-driven tests of cost_optimized and adaptive."""

from __future__ import annotations

import pytest

from sagellm_core.scheduling.policies.adaptive import AdaptiveConfig, AdaptivePolicy
from sagellm_core.scheduling.policies.cost_optimized import CostOptimizedPolicy
from sagellm_core.scheduling.predictor import TtftPredictor
from sagellm_core.scheduling.registry import default_policies
from sagellm_core.scheduling.view import ClusterView, InstanceView, Signals

from .helpers import item

PRED = TtftPredictor(default_ttft_s=0.1, prefill_tokens_per_s=10_000.0, service_s=2.0)
# cheap: 1 GPU at $1/h; fast: 4 GPUs at $3/h -> 12x the price per token at equal throughput
CHEAP = InstanceView("cheap", max_concurrency=2, gpus=1, cost_per_gpu_hour=1.0, pool="a10")
FAST = InstanceView("fast", max_concurrency=8, gpus=4, cost_per_gpu_hour=3.0, pool="h100")
CHEAP_BUSY = InstanceView(
    "cheap", max_concurrency=2, in_flight=2, waiting=4, gpus=1, cost_per_gpu_hour=1.0
)


@pytest.mark.parametrize(
    ("instances", "kw", "allowed", "why"),
    [
        ((CHEAP, FAST), {"ttft_ms": 2000}, ("cheap",), "cheapest predicted to meet"),
        ((CHEAP_BUSY, FAST), {"ttft_ms": 2000}, ("fast",), "cheapest predicted to meet"),
        ((CHEAP_BUSY, FAST), {"ttft_ms": 50}, ("cheap",), "none predicted to meet"),
        ((CHEAP_BUSY, FAST), {}, ("cheap",), "cheapest predicted to meet"),
        ((CHEAP, FAST), {"hint": 4}, ("fast",), "cheapest"),
        ((CHEAP, FAST), {"hint": 16}, ("cheap",), "cheapest"),
        ((CHEAP_BUSY, FAST), {"ttft_ms": 2000, "budget": 1e-4}, ("cheap",), "none predicted"),
        ((CHEAP, FAST), {"budget": 1e-9}, (), "> budget"),
    ],
)
def test_cost_optimized_placement(
    instances: tuple[InstanceView, ...], kw: dict[str, float], allowed: tuple[str, ...], why: str
) -> None:
    policy = CostOptimizedPolicy(PRED, default_tokens_per_s=1000.0)
    placement = policy.placement(item("r", 0, **kw), ClusterView(instances), 0.0)  # type: ignore[arg-type]
    assert placement.instances == allowed
    assert why in placement.reason


def test_cost_is_gpu_hours_per_expected_token() -> None:
    policy = CostOptimizedPolicy(PRED, default_tokens_per_s=1000.0)
    r = item("r", 0, prompt=600, max_tokens=400).meta  # 1000 tokens = 1 s of the instance
    assert policy.request_cost(CHEAP, r) == pytest.approx(1.0 / 3600)
    assert policy.request_cost(FAST, r) == pytest.approx(12.0 / 3600)
    quick = InstanceView("q", gpus=1, cost_per_gpu_hour=1.0, tokens_per_s=4000.0)
    assert policy.request_cost(quick, r) == pytest.approx(0.25 / 3600)


def test_cost_optimized_sheds_permanently_when_nothing_fits_the_budget() -> None:
    policy = CostOptimizedPolicy(PRED)
    shed = policy.should_shed(item("r", 0, budget=0.0), ClusterView((CHEAP, FAST)), 0.0)
    assert shed is not None
    assert shed.permanent
    assert "budget" in shed.reason
    assert policy.should_shed(item("r", 0), ClusterView((CHEAP, FAST)), 0.0) is None


def test_cost_optimized_ties_within_tolerance_are_all_allowed() -> None:
    twin = InstanceView("cheap2", gpus=1, cost_per_gpu_hour=1.005)
    placement = CostOptimizedPolicy(PRED).placement(
        item("r", 0), ClusterView((CHEAP, twin, FAST)), 0
    )
    assert placement.instances == ("cheap", "cheap2")


CFG = AdaptiveConfig(
    pressure_enter_depth=4,
    overload_enter_depth=50,
    overload_exit_depth=10,
    slo_enter_attainment=0.9,
    slo_exit_attainment=0.97,
    idle_enter_utilisation=0.3,
    idle_exit_utilisation=0.6,
    min_dwell_s=5.0,
)


def adaptive() -> AdaptivePolicy:
    policy = default_policies()["adaptive"]
    assert isinstance(policy, AdaptivePolicy)
    policy.config = CFG
    return policy


def sig(depth: int = 5, att: float | None = 0.99, util: float = 0.8) -> ClusterView:
    return ClusterView((), Signals(queue_depth=depth, slo_attainment=att, utilisation=util))


# (time, signals, expected active policy, expected reason fragment)
SCENARIO = [
    (0.0, sig(depth=0), "fifo", "initial"),
    (1.0, sig(depth=1), "slo_aware", "queue growing (depth 1)"),  # leading: at once, no dwell
    (2.0, sig(depth=1), "slo_aware", "queue growing"),  # still waiting: stays
    (3.0, sig(depth=0, att=0.98), "slo_aware", "queue growing"),  # calm, but dwell not over
    (7.0, sig(depth=0, att=0.98), "fifo", "no trigger"),
    (8.0, sig(depth=60), "priority", "queue depth 60 >= 50"),  # no objectives: bands protect
    (9.0, sig(depth=20), "priority", "queue depth 60 >= 50"),  # above exit: stays
    (10.0, sig(depth=5, att=0.8), "slo_aware", "queue depth 5 >= 4"),
    (20.0, sig(depth=0, att=0.95), "slo_aware", "queue depth 5 >= 4"),  # below exit: stays
    (30.0, sig(depth=0, att=0.98, util=0.1), "cost_optimized", "utilisation 0.10 <= 0.3"),
    (40.0, sig(depth=0, att=0.98, util=0.5), "cost_optimized", "utilisation 0.10"),
    (50.0, sig(depth=0, att=None, util=0.7), "fifo", "no trigger"),
]


def test_adaptive_switches_with_hysteresis_and_reports_why() -> None:
    policy = adaptive()
    for now, view, active, reason in SCENARIO:
        policy.observe(view, now)
        assert policy.active == active, now
        assert reason in policy.reason, (now, policy.reason)
    assert policy.status() == {"active": "fifo", "reason": policy.reason, "since": 50.0}


FULL = InstanceView("busy", max_concurrency=8, in_flight=8)


@pytest.mark.parametrize(
    ("objective_ms", "active"), [(None, "fifo"), (300.0, "slo_aware"), (10_000.0, "fifo")]
)
def test_adaptive_escalates_when_the_predicted_wait_threatens_an_objective(
    objective_ms: float | None, active: str
) -> None:
    """Nothing queued yet, but every slot is busy: a request with a 300 ms objective would
    wait ~0.5 s, so adaptive orders by slack before any objective is missed."""
    policy = adaptive()
    view = ClusterView((FULL,), Signals(queue_depth=0, utilisation=1.0))
    if objective_ms is not None:
        policy.order_key(item("r", 0, ttft_ms=objective_ms), view, 0.0)
    policy.observe(view, 1.0)
    assert policy.active == active
    if active == "slo_aware":
        assert "predicted wait" in policy.reason
        assert "tightest objective 0.300 s" in policy.reason


def test_adaptive_forgets_objectives_it_has_not_seen_for_a_while() -> None:
    policy = adaptive()
    view = ClusterView((FULL,), Signals(queue_depth=0, utilisation=1.0))
    policy.order_key(item("r", 0, ttft_ms=300.0), view, 0.0)
    assert policy.leading(view, 1.0).tightest_objective_s == 0.3
    assert policy.leading(view, 1.0 + CFG.objective_memory_s + 1).tightest_objective_s is None


def test_adaptive_delegates_ordering_to_the_active_policy() -> None:
    policy = adaptive()
    items = [item("bg", 0, priority="BACKGROUND"), item("crit", 1, priority="CRITICAL")]
    view = ClusterView((), Signals(queue_depth=2))
    assert min(items, key=lambda i: policy.order_key(i, view, 0.0)).meta.request_id == "bg"
    policy.observe(sig(depth=99), 10.0)
    assert min(items, key=lambda i: policy.order_key(i, view, 10.0)).meta.request_id == "crit"


@pytest.mark.parametrize(
    "kw",
    [
        {"overload_enter_depth": 5, "overload_exit_depth": 5},
        {"slo_enter_attainment": 0.9, "slo_exit_attainment": 0.9},
        {"idle_enter_utilisation": 0.6, "idle_exit_utilisation": 0.5},
    ],
)
def test_adaptive_config_needs_a_real_hysteresis_band(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        AdaptiveConfig(**kw)  # type: ignore[arg-type]


def test_adaptive_needs_the_other_policies() -> None:
    with pytest.raises(ValueError, match="slo_aware"):
        AdaptivePolicy({"fifo": default_policies()["fifo"]})
