"""A plain policy (fifo) admits an uncontended request from the slot numbers alone;
the answer must be what the instance views would give."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest

from sagellm_core.scheduling.view import InstanceView
from sagellm_router.admission_queue import AdmissionQueue, QueueConfig

from .helpers import meta

Slots = list[tuple[str, int, int]]  # (name, max_concurrency, in_flight)


async def admit_after(
    queue: AdmissionQueue, held: list[str], stack: AsyncExitStack
) -> tuple[str, ...] | None:
    """Hold a slot on each of ``held``, then admit one more: its allowed instances, or None
    when it had to queue."""
    for i, name in enumerate(held):
        ticket = await stack.enter_async_context(queue.admit(meta(f"held-{i}")))
        ticket.bind(name)
    task = asyncio.create_task(stack.enter_async_context(queue.admit(meta("new"))))
    for _ in range(3):
        await asyncio.sleep(0)
    if not task.done():
        task.cancel()
        return None
    return task.result().allowed


def queues(policy: str, slots: Slots, calls: list[int]) -> tuple[AdmissionQueue, AdmissionQueue]:
    views = tuple(InstanceView(n, max_concurrency=m, in_flight=f) for n, m, f in slots)

    def capacity() -> Slots:
        calls.append(1)
        return slots

    config = QueueConfig(policy=policy)
    with_capacity = AdmissionQueue("p", config, lambda: views, clock=lambda: 0.0, capacity=capacity)
    views_only = AdmissionQueue("p", config, lambda: views, clock=lambda: 0.0)
    return with_capacity, views_only


CASES = [
    # (instances, slots already held by this queue's tickets, expected allowed or None)
    ([("a", 2, 0), ("b", 2, 0)], [], ("a", "b")),
    ([("a", 2, 2), ("b", 2, 1)], [], ("b",)),
    ([("a", 1, 1), ("b", 1, 1)], [], None),  # full: queues
    ([("a", 2, 0), ("b", 1, 0)], ["a", "a"], ("b",)),  # held slots count while unscraped
    ([("a", 2, 1), ("b", 1, 0)], ["a"], ("a", "b")),  # held and scraped are the same request
    ([("a", 1, 0)], ["a"], None),
    ([], [], None),  # no instance at all
]


@pytest.mark.parametrize("policy", ["fifo"])  # priority places by instance views (better instances)
@pytest.mark.parametrize(("slots", "held", "expected"), CASES)
async def test_plain_admission_agrees_with_the_views(
    policy: str, slots: Slots, held: list[str], expected: tuple[str, ...] | None
) -> None:
    calls: list[int] = []
    fast, reference = queues(policy, slots, calls)
    async with AsyncExitStack() as a, AsyncExitStack() as b:
        got = await admit_after(fast, held, a)
        assert got == await admit_after(reference, held, b) == expected
    assert calls  # the slot numbers were used


@pytest.mark.parametrize("policy", ["slo_aware", "cost_optimized", "adaptive"])
async def test_policies_that_shed_place_or_observe_still_use_the_views(policy: str) -> None:
    calls: list[int] = []
    fast, _ = queues(policy, [("a", 2, 0)], calls)
    async with AsyncExitStack() as stack:
        assert await admit_after(fast, [], stack) == ("a",)
    assert not calls
