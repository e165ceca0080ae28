"""Table-driven tests of fifo, priority (aging), slo_aware and the selection step."""

from __future__ import annotations

import pytest

from sagellm_core.api.common import Priority
from sagellm_core.scheduling.base import Placement, ranked, select_next
from sagellm_core.scheduling.fairshare import FairShare
from sagellm_core.scheduling.policies.fifo import FifoPolicy
from sagellm_core.scheduling.policies.priority import PriorityPolicy
from sagellm_core.scheduling.policies.slo_aware import SloAwarePolicy
from sagellm_core.scheduling.predictor import TtftPredictor
from sagellm_core.scheduling.registry import default_policies
from sagellm_core.scheduling.view import ClusterView, InstanceView, QueueItem

from .helpers import item

C, H, N, L, B = (
    Priority.CRITICAL,
    Priority.HIGH,
    Priority.NORMAL,
    Priority.LOW,
    Priority.BACKGROUND,
)
VIEW = ClusterView((InstanceView("a", max_concurrency=4),))


def ids(items: list[QueueItem]) -> list[str]:
    return [i.meta.request_id for i in items]


def test_registry_has_the_five_policies_with_their_names() -> None:
    policies = default_policies()
    assert sorted(policies) == ["adaptive", "cost_optimized", "fifo", "priority", "slo_aware"]
    assert all(p.name == n for n, p in policies.items())


def test_fifo_is_arrival_order_regardless_of_priority() -> None:
    items = [item("b", 2, priority=C), item("a", 1, priority=B), item("c", 3)]
    assert ids(ranked(FifoPolicy(), items, VIEW, 0.0, FairShare())) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("prios", "now", "aging", "expected"),
    [
        # strict bands under overload: most urgent first, FIFO inside a band
        ((B, L, N, H, C, N), 0.0, 30.0, ["p4", "p3", "p2", "p5", "p1", "p0"]),
        # after 30 s every item climbed one band: ordering among equal climbs is unchanged
        ((B, L, C), 30.0, 30.0, ["p2", "p1", "p0"]),
        # without aging the BACKGROUND item never overtakes
        ((B, N), 1000.0, None, ["p1", "p0"]),
    ],
)
def test_priority_bands(
    prios: tuple[Priority, ...], now: float, aging: float | None, expected: list[str]
) -> None:
    items = [item(f"p{i}", i, priority=p) for i, p in enumerate(prios)]
    assert ids(ranked(PriorityPolicy(aging), items, VIEW, now)) == expected


@pytest.mark.parametrize(
    ("waited", "band"),
    [(0.0, 4), (9.9, 4), (10.0, 3), (25.0, 2), (40.0, 0), (400.0, 0)],
)
def test_aging_raises_one_band_per_interval(waited: float, band: int) -> None:
    old = item("old", 0, priority=B, at=0.0)
    assert PriorityPolicy(aging_interval_s=10.0).effective_band(old, waited) == band


def test_aging_prevents_starvation_of_a_background_request() -> None:
    """A steady stream of fresh HIGH requests: the BACKGROUND one wins once it has aged."""
    policy = PriorityPolicy(aging_interval_s=10.0)
    starving = item("bg", 0, priority=B, at=0.0)
    served_at = None
    for t in range(100):  # one fresh HIGH request per second, one admission per second
        fresh = item(f"h{t}", t + 1, priority=H, at=float(t))
        first = ranked(policy, [starving, fresh], VIEW, float(t))[0]
        if first is starving:
            served_at = t
            break
    assert served_at == 30  # band 4 -> 1 after 30 s; ties go to the older arrival


def test_fair_share_round_robins_users_within_a_band() -> None:
    share = FairShare()
    policy = PriorityPolicy()
    queue = [item(f"a{i}", i, user="alice") for i in range(4)]
    queue += [item("b0", 10, user="bob"), item("c0", 11, user="carol")]
    order = []
    while queue:
        chosen = select_next(policy, queue, VIEW, 0.0, lambda p: True, share)
        assert chosen is not None
        queue.remove(chosen[0])
        share.served(chosen[0].meta.user_id)
        order.append(chosen[0].meta.request_id)
    assert order == ["a0", "b0", "c0", "a1", "a2", "a3"]


def test_select_next_is_work_conserving_past_a_blocked_item() -> None:
    class OnlyA(PriorityPolicy):
        def placement(self, item: QueueItem, view: ClusterView, now: float) -> Placement:
            return Placement(("a",) if item.meta.request_id == "urgent" else ("b",))

    items = [item("urgent", 0, priority=C), item("later", 1, priority=L)]
    chosen = select_next(OnlyA(), items, VIEW, 0.0, lambda p: p.instances == ("b",))
    assert chosen is not None
    assert chosen[0].meta.request_id == "later"
    assert select_next(OnlyA(), items, VIEW, 0.0, lambda p: False) is None


PRED = TtftPredictor(default_ttft_s=0.1, prefill_tokens_per_s=1000.0, decode_s_per_token=0.01)


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        # earliest TTFT due first; no-SLO requests last in arrival order
        ([{"ttft_ms": 5000}, {"ttft_ms": 1000}, {}, {"ttft_ms": 3000}], ["r1", "r3", "r0", "r2"]),
        # same due time: the longer prompt is more urgent (less slack)
        ([{"ttft_ms": 2000, "prompt": 100}, {"ttft_ms": 2000, "prompt": 1500}], ["r1", "r0"]),
        # a deadline counts decode time: 1000 output tokens need 10 s
        ([{"deadline_ms": 12000, "max_tokens": 1000}, {"ttft_ms": 3000}], ["r0", "r1"]),
    ],
)
def test_slo_aware_orders_by_least_slack(
    specs: list[dict[str, float],], expected: list[str]
) -> None:
    items = [item(f"r{i}", i, **s) for i, s in enumerate(specs)]  # type: ignore[arg-type]
    assert ids(ranked(SloAwarePolicy(PRED), items, VIEW, 0.0)) == expected


def test_slo_aware_slack_uses_the_best_instance_prediction() -> None:
    policy = SloAwarePolicy(PRED)
    due = item("r", 0, ttft_ms=1000, prompt=0)
    busy = InstanceView("busy", max_concurrency=1, in_flight=1, waiting=3, ttft_s=0.5)
    idle = InstanceView("idle", ttft_s=0.2)
    assert policy.slack_s(due, ClusterView((busy,)), 0.0) == pytest.approx(1.0 - 0.5 - 4 * 2.0)
    assert policy.slack_s(due, ClusterView((busy, idle)), 0.0) == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("shed", "now", "grace", "sheds"),
    [(False, 5.0, 0.0, False), (True, 0.0, 0.0, False), (True, 5.0, 0.0, True),
     (True, 1.0, 1.0, False)],
)  # fmt: skip
def test_slo_aware_sheds_only_when_configured(
    shed: bool, now: float, grace: float, sheds: bool
) -> None:
    policy = SloAwarePolicy(PRED, shed=shed, shed_grace_s=grace)
    late = item("r", 0, ttft_ms=500, prompt=0)
    verdict = policy.should_shed(late, VIEW, now)
    assert (verdict is not None) is sheds
    if verdict is not None:
        assert "can no longer meet its SLO" in verdict.reason
        assert not verdict.permanent


def test_priority_rejects_a_non_positive_aging_interval() -> None:
    with pytest.raises(ValueError, match="aging_interval_s"):
        PriorityPolicy(aging_interval_s=0)
