"""Hot-path shortcuts: the admission queue's uncontended fast path (a lone waiter is placed
without ranking; an idle queue whose policy keeps no state builds no views on release), reused
instance views, and request ids without a syscall."""

from __future__ import annotations

import asyncio

import pytest

from sagellm_core.scheduling.metadata import PromptTokens, RequestMetadata
from sagellm_core.scheduling.view import InstanceView
from sagellm_router.admission_queue import AdmissionQueue, QueueConfig
from sagellm_router.admission_queue.sources import ViewCache
from sagellm_router.config import RouterSettings
from sagellm_router.state import build_state


def _meta(rid: str) -> RequestMetadata:
    return RequestMetadata(request_id=rid, user_id="u", arrival_s=0.0, prompt=PromptTokens(10))


class CountingSource:
    def __init__(self, *views: InstanceView) -> None:
        self.views, self.calls = views, 0

    def __call__(self) -> tuple[InstanceView, ...]:
        self.calls += 1
        return self.views


@pytest.mark.parametrize(("policy", "views_on_release"), [("fifo", False), ("adaptive", True)])
async def test_idle_release_builds_views_only_for_observing_policies(
    policy: str, views_on_release: bool
) -> None:
    source = CountingSource(InstanceView("http://a", max_concurrency=2))
    queue = AdmissionQueue("p", QueueConfig(policy=policy), source, clock=lambda: 0.0)
    async with queue.admit(_meta("r1")) as ticket:
        assert ticket.allowed == ("http://a",)
        ticket.bind("http://a")
        before = source.calls
    assert (source.calls > before) is views_on_release
    assert queue.active == 0
    assert queue.queued == 0


async def test_lone_waiter_without_a_free_slot_waits_for_the_release() -> None:
    source = CountingSource(InstanceView("http://a", max_concurrency=1))
    queue = AdmissionQueue("p", QueueConfig(), source, clock=lambda: 0.0)
    release = asyncio.Event()
    admitted: list[str] = []
    first_in = asyncio.Event()

    async def hold(rid: str) -> None:
        async with queue.admit(_meta(rid)) as ticket:
            ticket.bind("http://a")
            admitted.append(rid)
            first_in.set()
            await release.wait()

    first = asyncio.create_task(hold("r1"))
    await first_in.wait()
    second = asyncio.create_task(hold("r2"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert admitted == ["r1"]
    assert queue.queued == 1  # the bound slot is overlaid on the view
    release.set()
    await asyncio.gather(first, second)
    assert admitted == ["r1", "r2"]
    assert queue.active == 0


def test_view_cache_reuses_unchanged_views_and_rebuilds_changed_ones() -> None:
    cache = ViewCache()
    first = cache.get("http://a", 4, 1, 0, None, 1, 0.0, None, "p")
    assert cache.get("http://a", 4, 1, 0, None, 1, 0.0, None, "p") is first
    busier = cache.get("http://a", 4, 2, 0, None, 1, 0.0, None, "p")
    assert busier == InstanceView("http://a", max_concurrency=4, in_flight=2, pool="p")
    assert cache.get("http://b", 4, 2, 0, None, 1, 0.0, None, "p").name == "http://b"


def test_request_ids_are_fresh_32_hex_digits() -> None:
    state = build_state(RouterSettings(), lambda: 0.0)
    ids = {state.new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


@pytest.mark.parametrize(("tokens_per_minute", "counted"), [(None, False), (10_000, True)])
async def test_prompt_is_counted_for_a_token_rate_limit_only(
    tokens_per_minute: int | None, counted: bool
) -> None:
    calls: list[int] = []

    def count() -> int:
        calls.append(1)
        return 10

    meta = RequestMetadata(request_id="r", user_id="u", prompt=PromptTokens(count))
    source = CountingSource(InstanceView("http://a", max_concurrency=2))
    config = QueueConfig(tokens_per_minute=tokens_per_minute)
    queue = AdmissionQueue("p", config, source, clock=lambda: 0.0)
    async with queue.admit(meta) as ticket:
        ticket.bind("http://a")
    assert bool(calls) is counted
