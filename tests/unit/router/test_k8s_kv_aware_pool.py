"""A pool whose scheduling.routing is kv_aware reaches the router intact (the CRD enum, core's
SchedulingSpec and the router's registry all know the strategy)."""

from __future__ import annotations

from sagellm_router.discovery.k8s_index import pool_from_object
from sagellm_router.routing.registry import default_strategies


def test_a_kv_aware_pools_scheduling_is_kept_whole() -> None:
    pool = {
        "metadata": {"name": "kv", "namespace": "ns"},
        "status": {"model": "tiny", "scheduling": {"routing": "kv_aware", "policy": "priority",
                                                   "maxQueueLength": 7}},
    }  # fmt: skip
    snapshot = pool_from_object(pool)
    assert snapshot is not None
    assert snapshot.routing == "kv_aware"
    assert snapshot.scheduling.routing == "kv_aware"
    assert snapshot.scheduling.max_queue_length == 7  # not reset to defaults as unparseable
    assert "kv_aware" in default_strategies()
