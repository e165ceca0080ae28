"""The operator's autoscale step over core's decision: spec fields -> policy, signal source,
ownership of replicas, Events and status entries; and the GPUs a pool may use at max."""

from __future__ import annotations

from typing import Any

import pytest

from sagellm_core.api.autoscaling import AutoscalingSpec
from sagellm_core.autoscale import Bounds, ScalePolicy, bounds_of, policy_of
from sagellm_core.demand import PoolDemand, add_router_page
from sagellm_core.planner import plan_pool
from sagellm_core.validation import parse_pool, pool_problems
from sagellm_operator.reconcile.autoscale_step import RoleMemory, step
from sagellm_operator.reconcile.status import scale_status
from sagellm_operator.routers import router_urls


def test_every_spec_field_reaches_the_policy() -> None:
    spec = AutoscalingSpec.model_validate({
        "enabled": True, "general": {"minReplicas": 0, "maxReplicas": 3},
        "targetQueueDepthPerReplica": 2, "scaleUpWindowSeconds": 5, "scaleDownWindowSeconds": 7,
        "maxScaleUpStep": 2, "maxScaleDownStep": 3, "scaleToZeroAfterSeconds": 11,
    })  # fmt: skip
    assert policy_of(spec) == ScalePolicy(2.0, 5.0, 7.0, 2, 3, 11.0)
    assert spec.general is not None
    assert bounds_of(spec.general) == Bounds(0, 3)
    assert spec.scales_from_zero()
    assert not spec.model_copy(update={"enabled": False}).scales_from_zero()


def pool(replicas: int, **autoscaling: Any) -> dict[str, Any]:
    auto = {"enabled": True, "general": {"minReplicas": 0, "maxReplicas": 4},
            "targetQueueDepthPerReplica": 2, "scaleDownWindowSeconds": 0,
            "scaleToZeroAfterSeconds": 30, **autoscaling}  # fmt: skip
    return {"apiVersion": "sagellm.io/v1alpha1", "kind": "InferencePool",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"model": {"name": "m", "source": "m", "parameters": 1, "maxModelLen": 1024},
                     "roles": {"general": {"replicas": replicas}},
                     "autoscaling": auto}}  # fmt: skip


PAGE = """# HELP x
sagellm_router_demand_queued_requests{pool="ns/p"} 3.0
sagellm_router_demand_held_requests{pool="ns/p"} 3.0
sagellm_router_demand_in_flight_requests{pool="ns/p",role="general"} 2.0
sagellm_router_demand_in_flight_requests{pool="ns/other",role="decode"} 9.0
"""


def test_router_pages_sum_over_replicas() -> None:
    total: dict[str, PoolDemand] = {}
    add_router_page(total, PAGE)
    add_router_page(total, PAGE)
    assert total["ns/p"] == PoolDemand(6.0, 6.0, {"general": 4.0}, routers=2)
    assert total["ns/other"].signals("decode").demand == 18.0


@pytest.mark.parametrize(
    ("replicas", "demand", "engines", "want", "source", "event"),
    [
        (0, PoolDemand(1, 1, {}, 1), None, 1, "router", "ScaledFromZero"),
        (1, PoolDemand(6, 0, {"general": 4}, 1), None, 4, "router", "ScaledUp"),
        (3, PoolDemand(0, 0, {"general": 2}, 1), None, 2, "router", "ScaledDown"),  # step 1
        (1, None, {"general": 5.0}, 3, "engines", "ScaledUp"),  # no router reported the pool
        (2, PoolDemand(0, 0, {"general": 4}, 1), None, 2, "router", None),
    ],
)
def test_step_decides_from_router_demand_or_engines(
    replicas: int, demand: PoolDemand | None, engines: dict[str, float] | None, want: int,
    source: str, event: str | None,
) -> None:  # fmt: skip
    p = pool(replicas)
    spec = AutoscalingSpec.model_validate(p["spec"]["autoscaling"])
    out = step(p, spec, demand, engines, {}, 100.0, "t")
    (entry,) = out.status
    assert (entry["replicas"], entry["source"], entry["role"]) == (want, source, "General")
    assert [c.event_reason for c in out.changes] == ([event] if event else [])


def test_idle_pool_goes_to_zero_only_after_the_idle_period() -> None:
    p = pool(1)
    spec = AutoscalingSpec.model_validate(p["spec"]["autoscaling"])
    memory: dict[str, RoleMemory] = {}
    idle = PoolDemand(0, 0, {"general": 0}, 1)
    assert not step(p, spec, idle, None, memory, 100.0, "t").changes  # idle clock starts
    assert not step(p, spec, idle, None, memory, 129.0, "t").changes
    (change,) = step(p, spec, idle, None, memory, 131.0, "t").changes
    assert (change.decision.replicas, change.event_reason) == (0, "ScaledToZero")


def test_a_count_written_by_someone_else_is_overridden_with_a_warning() -> None:
    spec = AutoscalingSpec.model_validate(pool(1)["spec"]["autoscaling"])
    memory: dict[str, RoleMemory] = {}
    busy = PoolDemand(6, 0, {"general": 2}, 1)  # asks for 4
    (first,) = step(pool(1), spec, busy, None, memory, 100.0, "t").changes
    assert not first.overridden
    (second,) = step(pool(1), spec, busy, None, memory, 101.0, "t").changes  # `kubectl scale 1`
    assert second.overridden
    assert second.decision.replicas == 4


def test_disabled_autoscaling_owns_no_role() -> None:
    p = pool(1, enabled=False)
    spec = AutoscalingSpec.model_validate(p["spec"]["autoscaling"])
    assert step(p, spec, PoolDemand(40, 0, {}, 1), None, {}, 1.0, "t").status == []


def test_bounds_for_a_missing_role_are_refused() -> None:
    p = pool(1, decode={"minReplicas": 0, "maxReplicas": 2})
    assert any("autoscaling.decode" in e for e in pool_problems(p))


def test_max_gpus_counts_the_autoscaling_max() -> None:
    p = pool(1)
    p["spec"]["parallelism"] = {"strategy": "TP", "tensor": 2}
    spec = parse_pool(p).spec
    assert plan_pool(spec).max_gpus(spec) == 2 * 4
    spec = spec.model_copy(update={"autoscaling": None})
    assert plan_pool(spec).max_gpus(spec) == 2 * 1


def test_router_pods_found_by_label_give_their_metrics_urls() -> None:
    pods = [
        {"metadata": {"name": "a"}, "status": {"phase": "Running", "podIP": "10.0.0.2"}},
        {"metadata": {"name": "b"}, "status": {"phase": "Pending"}},
        {"metadata": {"name": "c", "deletionTimestamp": "x"},
         "status": {"phase": "Running", "podIP": "10.0.0.3"}},
    ]  # fmt: skip
    assert router_urls(pods, 8080) == ["http://10.0.0.2:8080"]


def test_status_entries_pass_the_crd_schema() -> None:
    """A role never scaled has no lastScaleTime (null is not a string to the API server)."""
    p = pool(2, general={"minReplicas": 1, "maxReplicas": 4})
    spec = AutoscalingSpec.model_validate(p["spec"]["autoscaling"])
    status = step(p, spec, PoolDemand(0, 0, {"general": 4}, 1), None, {}, 1.0, "t").status
    p["status"] = {"autoscaling": {"roles": status}}
    assert "lastScaleTime" not in status[0]
    assert pool_problems(p) == []


def test_scale_status_reports_the_general_role() -> None:
    roles = [{"role": "General", "desired": 3, "ready": 2}]
    assert scale_status(pool(3), roles) == {
        "replicas": 2,
        "selector": "sagellm.io/pool=p,sagellm.io/role=general",
    }
    assert scale_status(pool(3), [{"role": "Decode", "desired": 1, "ready": 1}])["replicas"] == 0
