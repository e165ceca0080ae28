"""The router's KV-event follower against real `sagellm sim` processes publishing over ZMQ:
discovery through /kv_event_sources, live events, catch-up by replay, publisher restarts and
engines leaving."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
import pytest
import zmq.asyncio
from sim_process import free_port, start, stop, wait_healthy

from sagellm_router.kv.index import KvIndex
from sagellm_router.kv.subscriber import KvEventFollower, publishers

pytestmark = pytest.mark.timeout(120)


@dataclass
class Engine:
    proc: subprocess.Popen[bytes]
    url: str
    ports: tuple[int, int, int]


def launch(ports: tuple[int, int, int] | None = None) -> Engine:
    http, pub, replay = ports or (free_port(), free_port(), free_port())
    config = {"enable_kv_cache_events": True, "endpoint": f"tcp://*:{pub}",
              "replay_endpoint": f"tcp://*:{replay}"}  # fmt: skip
    proc, url = start("m", "--max-model-len", "2048", "--sim-time-scale", "0.01",
                      "--kv-events-config", json.dumps(config), port=http)  # fmt: skip
    wait_healthy(proc, url)
    return Engine(proc, url, (http, pub, replay))


@pytest.fixture
async def env() -> AsyncIterator[tuple[KvIndex, KvEventFollower, aiohttp.ClientSession]]:
    index = KvIndex()
    ctx = zmq.asyncio.Context()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        follower = KvEventFollower(index, session, ctx)
        yield index, follower, session
        await follower.close()
    ctx.destroy(linger=0)


async def complete(session: aiohttp.ClientSession, url: str, prompt: str) -> list[int]:
    """Send ``prompt`` to one engine; returns its token ids (the engine's own tokenizer)."""
    async with session.post(f"{url}/tokenize", json={"prompt": prompt}) as resp:
        tokens: list[int] = (await resp.json())["tokens"]
    async with session.post(f"{url}/v1/completions", json={"prompt": prompt, "max_tokens": 1}) as r:
        assert r.status == 200
    return tokens


async def eventually(check: Callable[[], bool], within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met"
        await asyncio.sleep(0.05)


async def cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def prompt(tag: str) -> str:
    return " ".join(f"{tag}{i}" for i in range(120))


def held(index: KvIndex, tokens: list[int], *urls: str) -> dict[str, int]:
    return index.matched(tokens, 16, 1000, list(urls))


async def test_index_follows_stores_per_engine_and_drops_engines_that_leave(env) -> None:  # type: ignore[no-untyped-def]
    index, follower, session = env
    a, b = launch(), launch()
    try:
        follower.track([a.url, b.url])
        await eventually(lambda: set(follower.engines) == {a.url, b.url})
        tokens = await complete(session, a.url, prompt("p"))
        full = len(tokens) // 16
        await eventually(lambda: held(index, tokens, a.url, b.url) == {a.url: full, b.url: 0})
        follower.track([b.url])
        assert held(index, tokens, a.url) == {a.url: 0}
        assert index.blocks(a.url) == 0
    finally:
        stop(a.proc)
        stop(b.proc)


async def test_missed_events_are_replayed_and_a_restarted_publisher_is_cleared(env) -> None:  # type: ignore[no-untyped-def]
    index, follower, session = env
    a = launch()
    try:
        async with session.get(f"{a.url}/kv_event_sources") as resp:
            pub = publishers(a.url, await resp.json())[0]
        task = asyncio.get_running_loop().create_task(follower.follow(pub))
        first = await complete(session, a.url, prompt("p"))
        await eventually(lambda: held(index, first, a.url)[a.url] > 0)
        await cancel(task)
        missed = await complete(session, a.url, prompt("q"))  # nobody listens
        assert held(index, missed, a.url)[a.url] == 0
        task = asyncio.get_running_loop().create_task(follower.follow(pub))
        await eventually(lambda: held(index, missed, a.url)[a.url] == len(missed) // 16)
        stop(a.proc)  # the engine restarts on the same ports: its sequence starts at 0 again
        a = launch(a.ports)
        for i in range(50):  # traffic goes on; the SUB socket reconnects on its own
            fresh = await complete(session, a.url, prompt(f"r{i}"))
            if held(index, fresh, a.url)[a.url] > 0:
                break
            await asyncio.sleep(0.2)
        await eventually(lambda: held(index, fresh, a.url)[a.url] > 0)
        assert held(index, first, a.url)[a.url] == 0  # the old engine's blocks are gone
        await cancel(task)
    finally:
        stop(a.proc)


def test_publishers_from_kv_event_sources() -> None:
    sources = {"0": {"publisher": "zmq", "endpoint": "tcp://*:5557", "replay_endpoint": None},
               "1": {"publisher": "zmq", "endpoint": "tcp://*:5558",
                     "replay_endpoint": "tcp://0.0.0.0:5600"}}  # fmt: skip
    got = publishers("http://10.0.0.5:8000", sources)
    assert [(p.engine, p.endpoint, p.replay) for p in got] == [
        ("http://10.0.0.5:8000", "tcp://10.0.0.5:5557", None),
        ("http://10.0.0.5:8000|dp1", "tcp://10.0.0.5:5558", "tcp://10.0.0.5:5600"),
    ]
    assert publishers("http://h:1", {}) == []
    with pytest.raises(ValueError, match="kv_event_sources"):
        publishers("http://h:1", [])


async def test_feeds_follow_pools_routed_by_kv_aware_and_close_cleanly() -> None:
    """The app's feeds (not the strategy's picks) follow a kv_aware pool's engines; an engine
    that leaves the pool is dropped, and closing leaves no task behind."""
    from sagellm_router.config import RouterSettings
    from sagellm_router.state import build_state
    from sagellm_router.types import Endpoint, PoolSnapshot

    settings = RouterSettings.model_validate({"routing": {"default": "kv_aware"}})
    state = build_state(settings, lambda: 0.0)
    a, b = launch(), launch()
    try:
        async with aiohttp.ClientSession() as session:
            endpoints = (Endpoint(a.url, "a"), Endpoint(b.url, "b"))
            state.apply_pools([PoolSnapshot("ns/p", "m", endpoints=endpoints)])
            assert state.kv.followers == {}  # nothing is followed before the app starts it
            state.kv.start(session)
            follower = state.kv.followers["ns/p"]
            await eventually(lambda: set(follower.engines) == {a.url, b.url})
            tokens = await complete(session, b.url, prompt("shared"))
            index = state.strategies.get("ns/p", "kv_aware").index  # type: ignore[attr-defined]
            await eventually(lambda: held(index, tokens, b.url)[b.url] > 0)
            metrics = state.metrics.registry
            assert metrics.get_sample_value(
                "sagellm_router_kv_indexed_blocks", {"pool": "ns/p", "endpoint": "b"}
            ) == len(tokens) // 16  # fmt: skip
            state.apply_pools([PoolSnapshot("ns/p", "m", endpoints=endpoints[:1])])
            assert index.blocks(b.url) == 0
            assert set(follower.engines) == {a.url}
            tasks = list(follower._tasks.values())
            await state.kv.close()
            assert all(t.done() for t in tasks)
            assert state.kv.followers == {}
    finally:
        stop(a.proc)
        stop(b.proc)


async def test_sources_are_retried_until_the_engine_answers_and_a_404_is_not_followed() -> None:
    """An engine that is not up yet is asked again (backoff); one without the route is left."""
    from aiohttp import web

    calls = {"starting": 0, "old": 0}

    async def starting(request: web.Request) -> web.Response:
        calls["starting"] += 1
        return web.json_response({}) if calls["starting"] >= 3 else web.Response(status=503)

    async def old(request: web.Request) -> web.Response:
        calls["old"] += 1
        return web.Response(status=404)

    apps = []
    for handler in (starting, old):
        app = web.Application()
        app.router.add_get("/kv_event_sources", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        apps.append((runner, f"http://127.0.0.1:{runner.addresses[0][1]}"))
    ctx = zmq.asyncio.Context()
    try:
        async with aiohttp.ClientSession() as session:
            follower = KvEventFollower(KvIndex(), session, ctx, retry_s=0.01)
            follower.track([url for _, url in apps])
            await eventually(lambda: set(follower.engines) == {url for _, url in apps})
            assert calls == {"starting": 3, "old": 1}
            assert all(pubs == [] for pubs in follower.engines.values())
            await follower.close()
    finally:
        ctx.destroy(linger=0)
        for runner, _ in apps:
            await runner.cleanup()
