"""The asyncio admission queue, driven by an injected clock (no sleeps, no wall clock)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest

from sagellm_core.api.common import Priority
from sagellm_core.scheduling.metadata import RequestMetadata
from sagellm_core.scheduling.registry import PolicySettings
from sagellm_core.scheduling.view import InstanceView
from sagellm_router.admission_queue import (
    AdmissionQueue,
    QueueConfig,
    Rejected,
    Ticket,
)

from .helpers import meta


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_queue(
    slots: int = 1,
    *,
    clock: Callable[[], float] | None = None,
    instances: Sequence[InstanceView] | None = None,
    **cfg: object,
) -> AdmissionQueue:
    views = tuple(instances or (InstanceView("http://a", max_concurrency=slots),))
    config = QueueConfig(**cfg)  # type: ignore[arg-type]
    return AdmissionQueue("p", config, lambda: views, clock=clock or FakeClock())


async def until(cond: Callable[[], bool]) -> None:
    for _ in range(200):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


class Holder:
    """Runs ``async with queue.admit(meta)`` in a task and holds the slot until released."""

    def __init__(self, queue: AdmissionQueue, m: RequestMetadata, order: list[str]) -> None:
        self.ticket: Ticket | None = None
        self.done = asyncio.Event()
        self.task = asyncio.create_task(self._run(queue, m, order))

    async def _run(self, queue: AdmissionQueue, m: RequestMetadata, order: list[str]) -> None:
        async with queue.admit(m) as ticket:
            order.append(m.request_id)
            self.ticket = ticket
            if ticket.allowed:
                ticket.bind(ticket.allowed[0])
            await self.done.wait()

    async def release(self) -> None:
        self.done.set()
        await self.task


async def rejected_after(
    queue: AdmissionQueue, clock: FakeClock, m: RequestMetadata, first_s: float, then_s: float
) -> Rejected:
    """Queue ``m``: still waiting ``first_s`` later, rejected ``then_s`` after that."""
    pending = asyncio.create_task(queue.admit(m).__aenter__())
    await until(lambda: queue.queued == 1)
    clock.now += first_s
    queue.tick()
    assert queue.queued == 1
    clock.now += then_s
    queue.tick()
    with pytest.raises(Rejected) as err:
        await pending
    assert queue.queued == 0
    return err.value


async def release_current(holders: list[Holder], slots: int = 1) -> None:
    """Release one holder that currently holds a slot."""

    def current() -> Holder | None:
        return next((h for h in holders if h.ticket and not h.done.is_set()), None)

    await until(lambda: current() is not None)
    holder = current()
    assert holder is not None
    await holder.release()


async def test_admits_at_once_with_capacity_and_tells_which_instances() -> None:
    queue = make_queue(2)
    async with queue.admit(meta("r")) as ticket:
        assert ticket.allowed == ("http://a",)
        assert ticket.waited_s == 0.0
        ticket.bind("http://a")
        assert queue.active == 1
        with pytest.raises(RuntimeError, match="already bound"):
            ticket.bind("http://a")
    assert queue.active == 0
    assert queue.snapshot()["completed"] == 1


async def test_priority_ordering_under_overload() -> None:
    queue = make_queue(1, policy="priority")
    order: list[str] = []
    first = Holder(queue, meta("first"), order)
    await until(lambda: order == ["first"])
    prios = [Priority.BACKGROUND, Priority.LOW, Priority.CRITICAL, Priority.NORMAL, Priority.HIGH]
    holders = [Holder(queue, meta(p.value, priority=p), order) for p in prios]
    await until(lambda: queue.queued == 5)
    await first.release()
    for expected in ["CRITICAL", "HIGH", "NORMAL", "LOW", "BACKGROUND"]:
        await until(lambda: order[-1] == expected)  # noqa: B023
        assert queue.queued == len(prios) - len(order) + 1
        await next(
            h for h in holders if h.ticket and h.ticket.meta.request_id == expected
        ).release()
    waits = queue.snapshot()["waits"]
    assert isinstance(waits, dict)
    assert set(waits) == {"NORMAL", "CRITICAL", "HIGH", "LOW", "BACKGROUND"}


async def test_queue_full_answers_429_with_retry_after() -> None:
    queue = make_queue(1, max_queue_length=1)
    order: list[str] = []
    holder = Holder(queue, meta("a"), order)
    waiting = Holder(queue, meta("b"), order)
    await until(lambda: queue.queued == 1)
    with pytest.raises(Rejected) as err:
        async with queue.admit(meta("c")):
            pass
    assert err.value.status == 429
    assert err.value.kind == "queue_full"
    assert err.value.retry_after_s is not None
    assert err.value.retry_after_s >= 1
    assert err.value.response().headers["Retry-After"] == str(round(err.value.retry_after_s))
    await holder.release()
    await until(lambda: order == ["a", "b"])
    await waiting.release()


async def test_full_queue_under_priority_rejects_the_lowest_ranked_waiter() -> None:
    queue = make_queue(1, max_queue_length=1, policy="priority")
    order: list[str] = []
    holder = Holder(queue, meta("a"), order)
    low = asyncio.create_task(queue.admit(meta("low", priority=Priority.LOW)).__aenter__())
    await until(lambda: queue.queued == 1)
    crit = Holder(queue, meta("crit", priority=Priority.CRITICAL), order)
    with pytest.raises(Rejected, match="queue is full") as err:
        await low
    assert err.value.status == 429
    assert queue.queued == 1
    await holder.release()
    await until(lambda: order == ["a", "crit"])
    await crit.release()


async def test_zero_queue_length_rejects_only_when_busy() -> None:
    queue = make_queue(1, max_queue_length=0)
    async with queue.admit(meta("a")):
        with pytest.raises(Rejected, match="queue is full"):
            async with queue.admit(meta("b")):
                pass


async def test_queue_timeout_answers_503_with_retry_after() -> None:
    clock = FakeClock()
    queue = make_queue(1, clock=clock, queue_timeout_s=5.0)
    order: list[str] = []
    holder = Holder(queue, meta("a"), order)
    rejected = await rejected_after(queue, clock, meta("b"), 4.9, 0.2)
    assert (rejected.status, rejected.kind) == (503, "queue_timeout")
    assert "5 s queue timeout" in rejected.reason
    assert rejected.retry_after_s is not None
    assert queue.queued == 0
    await holder.release()


@pytest.mark.looptime
async def test_queue_timeout_also_fires_without_ticks() -> None:
    """Nothing else happens on the loop: the timeout fires by itself, on the loop's (virtual)
    time, after the configured 30 s and not before."""
    loop = asyncio.get_running_loop()
    queue = make_queue(1, clock=loop.time, queue_timeout_s=30.0)
    async with queue.admit(meta("a")):
        with pytest.raises(Rejected) as err:
            async with queue.admit(meta("b")):
                pass
    assert err.value.status == 503
    assert queue.stats.rejected["queue_timeout"] == 1
    assert 30.0 <= loop.time() < 31.0


async def test_client_disconnect_removes_the_request_from_the_queue() -> None:
    queue = make_queue(1)
    order: list[str] = []
    holder = Holder(queue, meta("a"), order)
    gone = Holder(queue, meta("gone"), order)
    stays = Holder(queue, meta("stays"), order)
    await until(lambda: queue.queued == 2)
    gone.task.cancel()
    await until(lambda: queue.queued == 1)
    assert queue.stats.cancelled == 1
    await holder.release()
    await until(lambda: order == ["a", "stays"])
    assert gone.task.cancelled()
    await stays.release()
    assert queue.active == 0


async def test_cancel_while_holding_a_slot_frees_it() -> None:
    queue = make_queue(1)
    order: list[str] = []
    holder = Holder(queue, meta("a"), order)
    await until(lambda: queue.active == 1)
    holder.task.cancel()
    await until(lambda: queue.active == 0)
    async with queue.admit(meta("b")) as ticket:
        assert ticket.allowed == ("http://a",)


async def test_rate_limit_rejects_with_retry_after() -> None:
    clock = FakeClock()
    queue = make_queue(4, clock=clock, requests_per_minute=1, tokens_per_minute=None)
    async with queue.admit(meta("a", user="alice")):
        pass
    with pytest.raises(Rejected) as err:
        async with queue.admit(meta("b", user="alice")):
            pass
    assert (err.value.status, err.value.kind) == (429, "rate_limited")
    assert err.value.retry_after_s == pytest.approx(60.0)
    async with queue.admit(meta("c", user="bob")):
        pass
    clock.now += 60
    async with queue.admit(meta("d", user="alice")):
        pass


async def test_fair_share_between_users_in_one_band() -> None:
    queue = make_queue(1, policy="priority")
    order: list[str] = []
    holders = [Holder(queue, meta("first", user="x"), order)]
    await until(lambda: queue.active == 1)
    holders += [Holder(queue, meta(f"a{i}", user="alice"), order) for i in range(3)]
    holders += [Holder(queue, meta("b0", user="bob"), order)]
    await until(lambda: queue.queued == 4)
    for _ in holders:
        await release_current(holders)
    assert order == ["first", "a0", "b0", "a1", "a2"]


async def test_set_policy_at_runtime_reorders_the_queue() -> None:
    queue = make_queue(1, policy="fifo")
    order: list[str] = []
    first = Holder(queue, meta("first"), order)
    await until(lambda: queue.active == 1)
    low = Holder(queue, meta("low", priority=Priority.LOW), order)
    crit = Holder(queue, meta("crit", priority=Priority.CRITICAL), order)
    await until(lambda: queue.queued == 2)
    queue.set_policy("priority")
    assert queue.policy.name == "priority"
    await first.release()
    await until(lambda: order == ["first", "crit"])
    await crit.release()
    await low.release()
    with pytest.raises(ValueError, match="unknown scheduling policy 'edf'; known: adaptive"):
        queue.set_policy("edf")


async def test_slo_attained_and_violated_counts() -> None:
    clock = FakeClock()
    queue = make_queue(2, clock=clock)
    async with queue.admit(meta("fast", ttft_ms=500)) as ticket:
        clock.now += 0.1
        ticket.first_token()
    async with queue.admit(meta("slow", ttft_ms=500)) as ticket:
        clock.now += 0.9
        ticket.first_token()
    with pytest.raises(KeyError):
        async with queue.admit(meta("broken", ttft_ms=500)):
            raise KeyError("upstream failed")
    async with queue.admit(meta("no-slo")):
        pass
    snap = queue.snapshot()
    assert (snap["slo_attained"], snap["slo_violated"]) == (1, 2)


async def test_slo_aware_sheds_hopeless_requests_when_configured() -> None:
    clock = FakeClock()
    settings = PolicySettings(shed_on_slo_miss=True)
    queue = make_queue(1, clock=clock, policy="slo_aware", policies=settings)
    order: list[str] = []
    holder = Holder(queue, meta("a"), order)
    await until(lambda: queue.active == 1)
    # one busy slot: predicted TTFT ~2.2 s (a slot frees in ~2 s), so 5 s is feasible at first
    rejected = await rejected_after(queue, clock, meta("d", at=clock.now, ttft_ms=5000), 1.0, 3.0)
    assert (rejected.status, rejected.kind) == (503, "shed")
    await holder.release()
    with pytest.raises(Rejected, match="can no longer meet its SLO"):
        async with queue.admit(meta("hopeless", at=clock.now - 1.0, ttft_ms=500)):
            pass


CHEAP = InstanceView("http://cheap", max_concurrency=1, gpus=1, cost_per_gpu_hour=1.0)
FAST = InstanceView("http://fast", max_concurrency=4, gpus=4, cost_per_gpu_hour=3.0)


async def test_cost_optimized_ticket_allows_only_the_cheap_instance() -> None:
    queue = make_queue(instances=(CHEAP, FAST), policy="cost_optimized")
    async with queue.admit(meta("r", ttft_ms=5000)) as ticket:
        assert ticket.allowed == ("http://cheap",)
        assert "cheapest predicted to meet the SLO" in ticket.reason
    with pytest.raises(Rejected) as err:
        async with queue.admit(meta("poor", budget=0.0)):
            pass
    assert (err.value.status, err.value.retry_after_s) == (422, None)


async def test_adaptive_reports_its_active_policy() -> None:
    clock = FakeClock()
    queue = make_queue(4, clock=clock, policy="adaptive", queue_timeout_s=1000.0)
    order: list[str] = []
    holders = [Holder(queue, meta(f"r{i}"), order) for i in range(6)]  # 4 run, 2 wait
    await until(lambda: queue.queued == 2)
    # the first request that had to wait is a leading signal: slo_aware at once
    assert queue.snapshot()["policy_status"] == {
        "active": "slo_aware",
        "reason": "queue growing (depth 1)",
        "since": 0.0,
    }
    clock.now = 31.0  # past the minimum dwell time, but requests still wait: it stays
    queue.tick()
    assert queue.snapshot()["policy_status"]["active"] == "slo_aware"  # type: ignore[index]
    for _ in holders:
        await release_current(holders, slots=4)
    # nothing waits any more: one step down at t=31 (to fifo, the pool still busy), then
    # cost_optimized once the dwell time has passed with the pool nearly idle
    assert queue.snapshot()["policy_status"]["active"] == "fifo"  # type: ignore[index]
    clock.now = 62.0
    queue.tick()
    status = queue.snapshot()["policy_status"]
    assert status == {
        "active": "cost_optimized",
        "reason": "utilisation 0.00 <= 0.3, queue empty",
        "since": 62.0,
    }


async def test_run_admits_when_capacity_appears_outside_the_router() -> None:
    views: list[InstanceView] = []  # no endpoint yet
    queue = AdmissionQueue("p", QueueConfig(), lambda: views, clock=FakeClock())
    ticker = asyncio.create_task(queue.run(interval_s=0))
    waiting = asyncio.create_task(queue.admit(meta("r")).__aenter__())
    await until(lambda: queue.queued == 1)
    views.append(InstanceView("http://new", max_concurrency=1))
    ticket = await waiting
    assert ticket.allowed == ("http://new",)
    ticker.cancel()
