"""Router demand signals per pool and role, and holding requests for pools at zero."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sagellm_core.validation import parse_pool
from sagellm_operator.reconcile.status import scale_from_zero
from sagellm_router.config import RouterSettings
from sagellm_router.demand import PoolDemand, pool_demand
from sagellm_router.discovery.k8s_index import pool_from_object
from sagellm_router.state import build_state, may_hold
from sagellm_router.stats.engine import EngineStats
from sagellm_router.stats.tracker import RequestTracker
from sagellm_router.types import Endpoint, PoolSnapshot, Role

ROOT = Path(__file__).resolve().parents[3]


def samples(state: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(state.metrics.registry).decode()  # type: ignore[attr-defined]
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("sagellm_router_demand"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_demand_per_pool_and_role() -> None:
    state = build_state(RouterSettings(), lambda: 0.0)
    pd = PoolSnapshot("ns/pd", "m", endpoints=(
        Endpoint("http://p", "p", Role.PREFILL), Endpoint("http://d1", "d1", Role.DECODE),
        Endpoint("http://d2", "d2", Role.DECODE),
    ))  # fmt: skip
    state.apply_pools([pd])
    state.tracker.start("http://p")
    state.tracker.start("http://d1")
    state.tracker.start("http://d2")
    state.tracker.start("http://d2")
    state.engine_stats["http://d1"] = EngineStats(running=3, waiting=1, kv_usage=0.2)
    state.engine_stats["http://d2"] = EngineStats(running=5, waiting=0, kv_usage=0.6)
    state.arrivals.labels("ns/pd").inc(7)
    got = samples(state)
    pool, prefill, decode = (("pool", "ns/pd"),), (("pool", "ns/pd"), ("role", "prefill")), (
        ("pool", "ns/pd"), ("role", "decode"))  # fmt: skip
    assert got[("sagellm_router_demand_in_flight_requests", prefill)] == 1
    assert got[("sagellm_router_demand_in_flight_requests", decode)] == 3
    assert got[("sagellm_router_demand_engine_running_requests", decode)] == 8
    assert got[("sagellm_router_demand_engine_waiting_requests", decode)] == 1
    assert abs(got[("sagellm_router_demand_kv_usage_ratio", decode)] - 0.4) < 1e-9
    assert got[("sagellm_router_demand_arrivals_total", pool)] == 7
    assert got[("sagellm_router_demand_queued_requests", pool)] == 0
    assert got[("sagellm_router_demand_held_requests", pool)] == 0


def test_queued_requests_of_a_pool_without_routable_endpoints_are_held() -> None:
    tracker = RequestTracker(lambda: 0.0)
    zero = PoolSnapshot("ns/zero", "m", scale_from_zero=True)
    assert pool_demand(zero, 2, False, tracker, {}) == PoolDemand("ns/zero", 2, 2, {})
    one = PoolSnapshot("ns/one", "m", endpoints=(Endpoint("http://a", "a"),))
    got = pool_demand(one, 2, True, tracker, {})
    assert (got.queued, got.held, got.roles["general"].in_flight) == (2, 0, 0)


def pool_obj(status: dict[str, object]) -> dict[str, object]:
    return {"metadata": {"name": "p", "namespace": "ns"}, "status": {"model": "m", **status}}


def test_a_pool_that_scales_from_zero_holds_requests() -> None:
    zero = pool_from_object(pool_obj({"scaleFromZero": True}))  # as the operator writes it
    assert zero is not None
    assert zero.scale_from_zero
    assert may_hold(zero)
    for off in ({"scaleFromZero": False}, {}, {"scaleFromZero": "yes"}):
        snap = pool_from_object(pool_obj(off))
        assert snap is not None
        assert not snap.scale_from_zero
        assert not may_hold(snap)


@pytest.mark.parametrize(
    ("autoscaling", "expected"),
    [({"enabled": True, "general": {"minReplicas": 0, "maxReplicas": 2}}, True),
     ({"enabled": False, "general": {"minReplicas": 0, "maxReplicas": 2}}, False),
     ({"enabled": True, "general": {"minReplicas": 1, "maxReplicas": 2}}, False),
     (None, False)],
)  # fmt: skip
def test_the_operator_tells_the_router_which_pools_scale_from_zero(
    autoscaling: dict[str, object] | None, expected: bool
) -> None:
    pool = yaml.safe_load((ROOT / "crds/samples/general-pool.yaml").read_text())
    if autoscaling is not None:
        pool["spec"]["autoscaling"] = autoscaling
    assert scale_from_zero(parse_pool(pool).spec) is expected


def test_a_router_whose_pools_are_all_at_zero_stays_ready() -> None:
    state = build_state(RouterSettings(), lambda: 0.0)
    state.apply_pools([PoolSnapshot("ns/zero", "m")])
    assert not state.ready()  # nothing to serve and nothing that can start
    state.apply_pools([PoolSnapshot("ns/zero", "m", scale_from_zero=True)])
    assert state.ready()  # the Service must keep sending requests that start a replica


def test_router_lists_the_instances_it_holds_as_draining() -> None:
    """The operator's drain acknowledgement: the page names exactly the draining instances,
    and the core parser (the operator's reader) gets them back."""
    from sagellm_core.demand import draining_instances

    state = build_state(RouterSettings(), lambda: 0.0)
    pool = PoolSnapshot("ns/p", "m", endpoints=(
        Endpoint("http://a", "a", Role.GENERAL), Endpoint("http://b", "b", Role.GENERAL,
                                                          draining=True),
        Endpoint("http://c", "", Role.GENERAL, draining=True),
    ))  # fmt: skip
    state.apply_pools([pool])
    page = generate_latest(state.metrics.registry).decode()
    assert draining_instances(page) == {("ns/p", "b")}
    state.apply_pools(
        [PoolSnapshot("ns/p", "m", endpoints=(Endpoint("http://a", "a", Role.GENERAL),))]
    )
    assert draining_instances(generate_latest(state.metrics.registry).decode()) == set()
