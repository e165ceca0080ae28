"""One admission route, driven by what each policy declares (``Capabilities``): a table over
the built-in policies and plugin policies (declared, undeclared, fifo-like, pinned)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from sagellm_test_plugins.policies import PinFirst

from sagellm_core.api.common import Priority
from sagellm_core.plugins import SCHEDULING_POLICY, Plugin, PluginError
from sagellm_core.scheduling.base import (
    GENERAL,
    BasePolicy,
    Capabilities,
    OrderKey,
    Placement,
    capabilities_of,
)
from sagellm_core.scheduling.metadata import PromptTokens, RequestMetadata
from sagellm_core.scheduling.registry import policies_with_plugins
from sagellm_core.scheduling.view import ClusterView, InstanceView, QueueItem
from sagellm_router.admission_queue import AdmissionQueue, QueueConfig


def meta(rid: str, priority: Priority = Priority.NORMAL) -> RequestMetadata:
    return RequestMetadata(request_id=rid, priority=priority, prompt=PromptTokens(10))


class NewestFirst(BasePolicy):
    """A plugin ordering by the item alone (newest first): declares that it needs no view."""

    name = "newest_first"
    capabilities = Capabilities(observes=False, uses_view=False)

    def order_key(self, item: QueueItem, view: ClusterView, now: float) -> OrderKey:
        return (-float(item.seq),)


class OnlyB(BasePolicy):
    """A plugin that declares nothing: it gets GENERAL, so its placement is honoured."""

    name = "only_b"

    def order_key(self, item: QueueItem, view: ClusterView, now: float) -> OrderKey:
        return (float(item.seq),)

    def placement(self, item: QueueItem, view: ClusterView, now: float) -> Placement:
        return Placement(tuple(n for n in view.names() if n == "b"), "only b")


PLUGINS = {cls.name: Plugin(SCHEDULING_POLICY, cls.name, lambda s, c=cls: c(), f"test {cls.name}")
           for cls in (NewestFirst, OnlyB, PinFirst)}  # fmt: skip


@dataclass
class Case:
    policy: str
    views: bool  # builds instance views to admit an uncontended request
    idle_views: bool  # builds them when poked with nothing queued (observes)
    allowed: tuple[str, ...]  # the uncontended request's allowed instances
    order: list[str]  # admission order of c1 (LOW), c2 (HIGH), c3 (NORMAL) queued behind a slot


CASES = [
    Case("fifo", views=False, idle_views=False, allowed=("a", "b"), order=["c1", "c2", "c3"]),
    Case("priority", True, False, ("a", "b"), ["c2", "c3", "c1"]),
    Case("slo_aware", True, False, ("a", "b"), ["c1", "c2", "c3"]),  # no SLOs: arrival order
    Case("cost_optimized", True, False, ("a", "b"), ["c2", "c3", "c1"]),  # bands, no aging
    Case("adaptive", True, True, ("a", "b"), ["c1", "c2", "c3"]),  # idle: fifo-like modes
    Case("newest_first", False, False, ("a", "b"), ["c3", "c2", "c1"]),
    Case("only_b", True, True, ("b",), ["c1", "c2", "c3"]),
    Case("pin_first", True, False, ("a",), ["c1", "c2", "c3"]),
]
BANDS = {"c1": Priority.LOW, "c2": Priority.HIGH, "c3": Priority.NORMAL}


class Sources:
    """Instance views and the same slot numbers, counting how often each is read."""

    def __init__(self, slots: dict[str, int]) -> None:
        self.slots, self.busy = slots, dict.fromkeys(slots, 0)
        self.view_reads = self.capacity_reads = 0

    def views(self) -> tuple[InstanceView, ...]:
        self.view_reads += 1
        return tuple(InstanceView(n, max_concurrency=s, in_flight=self.busy[n])
                     for n, s in self.slots.items())  # fmt: skip

    def capacity(self) -> list[tuple[str, int, int]]:
        self.capacity_reads += 1
        return [(n, s, self.busy[n]) for n, s in self.slots.items()]


def queue_for(case: Case, sources: Sources) -> AdmissionQueue:
    policies = policies_with_plugins(PLUGINS)
    config = QueueConfig(policy=case.policy)
    return AdmissionQueue(
        "p", config, sources.views, clock=lambda: 0.0, policies=policies, capacity=sources.capacity
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.policy)
async def test_uncontended_admission_does_what_the_capabilities_ask(case: Case) -> None:
    sources = Sources({"a": 2, "b": 2})
    queue = queue_for(case, sources)
    async with queue.admit(meta("r1")) as ticket:
        assert ticket.allowed == case.allowed
        assert (sources.view_reads > 0) is case.views
        assert (sources.capacity_reads > 0) is not case.views
        ticket.bind(case.allowed[0])
    before = sources.view_reads
    queue.poke()  # idle
    assert (sources.view_reads > before) is case.idle_views


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.policy)
async def test_contended_admission_follows_the_policys_order(case: Case) -> None:
    sources = Sources({"a": 1, "b": 1})
    sources.busy = {"a": 1, "b": 1}  # both engines report a running request
    queue = queue_for(case, sources)
    order: list[str] = []

    async def wait(rid: str) -> None:
        async with queue.admit(meta(rid, priority=BANDS[rid])) as ticket:
            order.append(rid)
            ticket.bind(ticket.allowed[0])
            await asyncio.sleep(0)

    tasks = []
    for rid in ("c1", "c2", "c3"):
        tasks.append(asyncio.create_task(wait(rid)))
        await asyncio.sleep(0)
    assert queue.queued == 3
    sources.busy = {"a": 0, "b": 0}
    queue.poke()
    await asyncio.gather(*tasks)
    assert order == case.order


def test_capabilities_default_to_general() -> None:
    assert capabilities_of(OnlyB()) is GENERAL
    assert capabilities_of(object()) is GENERAL


def test_a_plugin_with_bad_capabilities_is_refused_naming_it() -> None:
    class Bad(BasePolicy):
        name = "bad"
        capabilities = {"observes": False}  # type: ignore[assignment]

        def order_key(self, item: QueueItem, view: ClusterView, now: float) -> OrderKey:
            return (0.0,)

    bad = Plugin(SCHEDULING_POLICY, "bad", lambda s: Bad(), "entry point 'bad'")
    with pytest.raises(PluginError, match=r"entry point 'bad'.*capabilities must be"):
        policies_with_plugins({"bad": bad})
