"""``priority`` sends CRITICAL and HIGH requests to the better instances (seed semantics)."""

from __future__ import annotations

from sagellm_core.api.common import Priority
from sagellm_core.scheduling.policies.priority import PriorityPolicy
from sagellm_core.scheduling.view import ClusterView, InstanceView, QueueItem

from .helpers import meta

FAST = InstanceView("fast", max_concurrency=8, ttft_s=0.05)
SLOW = InstanceView("slow", max_concurrency=8, ttft_s=0.40)
BUSY_FAST = InstanceView("fast", max_concurrency=8, in_flight=8, waiting=6, ttft_s=0.05)
VIEW = ClusterView((FAST, SLOW))


def at(priority: Priority) -> QueueItem:
    return QueueItem(meta("r", priority=priority), 0, 0.0)


def test_high_and_critical_go_to_the_better_instance_others_anywhere() -> None:
    policy = PriorityPolicy()
    for band in (Priority.CRITICAL, Priority.HIGH):
        placement = policy.placement(at(band), VIEW, 0.0)
        assert placement.instances == ("fast",)
        assert "predicted TTFT within 25%" in placement.reason
    for band in (Priority.NORMAL, Priority.LOW, Priority.BACKGROUND):
        assert policy.placement(at(band), VIEW, 0.0).instances == ("fast", "slow")


def test_better_means_predicted_now_so_a_swamped_fast_engine_is_not_better() -> None:
    view = ClusterView((BUSY_FAST, SLOW))
    assert PriorityPolicy().placement(at(Priority.HIGH), view, 0.0).instances == ("slow",)


def test_similar_instances_are_all_better_and_better_bands_zero_turns_it_off() -> None:
    twin = InstanceView("fast2", max_concurrency=8, ttft_s=0.055)
    view = ClusterView((FAST, twin, SLOW))
    assert PriorityPolicy().placement(at(Priority.HIGH), view, 0.0).instances == (
        "fast", "fast2",
    )  # fmt: skip
    plain = PriorityPolicy(better_bands=0).placement(at(Priority.CRITICAL), view, 0.0)
    assert plain.instances == ("fast", "fast2", "slow")
