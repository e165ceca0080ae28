"""Which pools the router follows KV events for (``kv.feeds.wanted_feeds``), and the feeds'
bookkeeping before the app starts them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from e2e.waiting import eventually
from sagellm_router.config import RouterSettings
from sagellm_router.state import build_state
from sagellm_router.types import Endpoint, PoolSnapshot

ENGINES = (Endpoint("http://a:8000", "a"), Endpoint("inprocess://x", "x"))


def wanted(settings: dict[str, object], *pools: PoolSnapshot) -> dict[str, dict[str, str]]:
    state = build_state(RouterSettings.model_validate(settings), lambda: 0.0)
    state.apply_pools(pools)
    return {pool: dict(feed.engines) for pool, feed in state.kv.wanted.items()}


def test_pools_routed_by_kv_aware_are_followed_others_not() -> None:
    kv = PoolSnapshot("kv", "m", routing="kv_aware", endpoints=ENGINES)
    rr = PoolSnapshot("rr", "m2", routing="round_robin", endpoints=ENGINES)
    assert wanted({}, kv, rr) == {"kv": {"http://a:8000": "a"}}  # in-process engines: no events


def test_the_router_default_and_pd_strategies_count() -> None:
    plain = PoolSnapshot("p", "m", endpoints=ENGINES[:1])
    assert wanted({"routing": {"default": "kv_aware"}}, plain) == {"p": {"http://a:8000": "a"}}
    assert wanted({"pd": {"prefill_routing": "kv_aware"}}, plain) == {"p": {"http://a:8000": "a"}}
    assert wanted({}, plain) == {}


def test_nothing_is_followed_before_the_app_starts_the_feeds() -> None:
    state = build_state(RouterSettings(), lambda: 0.0)
    state.apply_pools([PoolSnapshot("kv", "m", routing="kv_aware", endpoints=ENGINES)])
    assert not state.kv.started
    assert state.kv.followers == {}


class _OnePool:
    """Discovery that publishes one kv_aware pool (an engine that never answers), then idles."""

    async def updates(self) -> AsyncIterator[tuple[PoolSnapshot, ...]]:
        yield (PoolSnapshot("kv", "m", routing="kv_aware", endpoints=(Endpoint(DOWN, "a"),)),)
        await asyncio.Event().wait()


DOWN = "http://127.0.0.1:9"  # nothing listens: the follower keeps asking


async def test_the_router_services_start_and_close_the_feeds() -> None:
    from sagellm_router.services import CoreServices

    state = build_state(RouterSettings(), lambda: 0.0)
    services = CoreServices(state, _OnePool())
    await services.start()
    await eventually(lambda: "kv" in state.kv.followers, "the pool's feed to start", 2.0, 0.01)
    follower = state.kv.followers["kv"]
    tasks = list(follower._tasks.values())
    assert tasks
    await services.stop()
    assert state.kv.followers == {}
    assert all(task.done() for task in tasks)
    assert not state.kv.started
