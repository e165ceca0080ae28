"""Hung, stalled and dead engines behind the router: timeouts, ejection with a reason,
re-admission only after a probe request works, dead pools answering 503 at once, and the
stream continuing on another engine (mid-stream failover)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from router_fakes import pool, router_yaml
from test_resilience import closed_port_url, gauge, wait_until_gauge

from e2e.waiting import eventually

EJECTIONS = "sagellm_router_endpoint_ejections_total"


def fast(pools: list[dict[str, Any]], **sections: Any) -> dict[str, Any]:
    """Router settings with short fault timers (the defaults are tens of seconds)."""
    doc = router_yaml(pools, timeouts={"first_byte_s": 2, "stall_s": 2}, **sections)
    doc["health"] = {"failure_threshold": 2, "probe_interval_s": 0.05, "probe_backoff_max_s": 0.2,
                     "probe_timeout_s": 1, **sections.get("health", {})}  # fmt: skip
    return doc


async def queued_in(s: aiohttp.ClientSession, url: str, count: float) -> bool:
    """Whether pool p's admission queue holds ``count`` requests (the router's own gauge)."""
    return f'sagellm_router_queued_requests{{pool="p"}} {count}' in await metrics(s, url)


async def metrics(s: aiohttp.ClientSession, url: str) -> str:
    async with s.get(url + "/metrics") as r:
        return await r.text()


def events_of(text: str) -> list[str]:
    return [e.removeprefix("data: ") for e in text.strip().split("\n\n")]


async def test_first_byte_timeout_retries_elsewhere_and_ejects(engines, start_router) -> None:  # type: ignore[no-untyped-def]
    hung, good = await engines(2)
    hung.hang = True
    url = await start_router(fast([pool("p", "m", [hung.url, good.url])]))
    body = {"model": "m", "prompt": "x", "stream": True}
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/v1/completions", json=body) as r:
            assert r.status == 200
            assert r.headers["X-Sagellm-Instance"] == "p-1"
            assert events_of(await r.text())[-1] == "[DONE]"
        text = await metrics(s, url)
    assert f'{EJECTIONS}{{endpoint="p-0",pool="p",reason="first_byte_timeout"}} 1.0' in text


async def test_hung_engine_stays_ejected_while_health_says_200(engines, start_router) -> None:  # type: ignore[no-untyped-def]
    hung, good = await engines(2)
    hung.hang = True
    url = await start_router(fast([pool("p", "m", [hung.url, good.url])]))
    body = {"model": "m", "prompt": "x", "stream": True}
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/v1/completions", json=body) as r:
            await r.read()
        probes = len(hung.seen)
        for _ in range(100):  # many probe intervals: /health answers 200 all along
            await asyncio.sleep(0.02)
            async with s.get(hung.url + "/health") as h:
                assert h.status == 200
        assert await gauge(s, url, "ejected") == 1.0
        assert len(hung.seen) > probes  # it was probed (with a completion), and failed
        assert all(b.get("max_tokens") == 1 for b in hung.bodies[probes:])
        hung.hang = False  # the engine recovers: the next probe re-admits it
        await wait_until_gauge(s, url, "routable", 2.0)


async def test_stall_mid_stream_continues_on_another_engine(engines, start_router) -> None:  # type: ignore[no-untyped-def]
    stalling, good = await engines(2, chunks=6)
    stalling.stall_after = 2
    url = await start_router(fast([pool("p", "m", [stalling.url, good.url])]))
    body = {"model": "m", "prompt": "tell me", "stream": True, "max_tokens": 10,
            "stream_options": {"include_usage": True}}  # fmt: skip
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/v1/completions", json=body) as r:
            assert r.headers["X-Sagellm-Instance"] == "p-0"
            events = events_of(await r.text())
        text = await metrics(s, url)
    assert events.count("[DONE]") == 1
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert not [c for c in chunks if "error" in c]
    texts = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    assert texts == " e0-0 e0-1" + "".join(f" e1-{i}" for i in range(6))
    assert {c["id"] for c in chunks} == {"c"}
    # the continuation: prompt + text so far, max_tokens reduced by the 2 tokens produced
    cont = good.bodies[-1]
    assert cont["prompt"] == "tell me e0-0 e0-1"
    assert cont["max_tokens"] == 8
    # usage: the original prompt (2 words), completion tokens of both segments (2 + 6)
    assert chunks[-1]["usage"] == {"prompt_tokens": 2, "completion_tokens": 8, "total_tokens": 10}
    assert f'{EJECTIONS}{{endpoint="p-0",pool="p",reason="stall"}} 1.0' in text
    assert (
        'sagellm_router_stream_failovers_total{outcome="continued",pool="p",reason="stall"} 1.0'
        in text
    )


async def test_chat_failover_continues_the_assistant_turn(engines, start_router) -> None:  # type: ignore[no-untyped-def]
    dying, good = await engines(2, chunks=4)
    dying.die_after = 3
    url = await start_router(fast([pool("p", "m", [dying.url, good.url])]))
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "max_completion_tokens": 50}  # fmt: skip
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions", json=body) as r:
        events = events_of(await r.text())
    assert events[-1] == "[DONE]"
    assert not [e for e in events if '"error"' in e]
    cont = good.bodies[-1]
    assert cont["messages"][-1] == {"role": "assistant", "content": " e0-0 e0-1 e0-2"}
    assert cont["continue_final_message"] is True
    assert cont["add_generation_prompt"] is False
    assert cont["max_completion_tokens"] == 47
    assert "usage" not in events[-2]  # the client did not ask for usage: none is added


async def test_shapes_that_cannot_continue_end_with_an_error_event(engines, start_router) -> None:  # type: ignore[no-untyped-def]
    dying, good = await engines(2, chunks=4)
    dying.die_after = 2
    url = await start_router(fast([pool("p", "m", [dying.url, good.url])]))
    body = {"model": "m", "prompt": "x", "stream": True, "n": 2}
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/v1/completions", json=body) as r:
            events = events_of(await r.text())
        text = await metrics(s, url)
    assert json.loads(events[-2])["error"]["code"] == 502
    assert events[-1] == "[DONE]"
    assert good.bodies == []
    assert 'outcome="refused",pool="p",reason="disconnected"} 1.0' in text


async def test_dead_pool_answers_503_at_once_and_ready_follows(engines, start_router) -> None:  # type: ignore[no-untyped-def]
    doc = fast([pool("p", "m", [closed_port_url()])], health={"failure_threshold": 1})
    doc["discovery"]["pools"][0]["scheduling"] = {"queueTimeoutMs": 30000}
    url = await start_router(doc)
    body = {"model": "m", "prompt": "x"}
    timeout = aiohttp.ClientTimeout(total=10)  # well under the 30 s queue timeout
    async with aiohttp.ClientSession(timeout=timeout) as s:
        async with s.post(url + "/v1/completions", json=body) as r:
            assert r.status == 502  # the attempt that finds the engine dead
        for _ in range(3):
            async with s.post(url + "/v1/completions", json=body) as r:
                assert r.status == 503
                assert r.headers["Retry-After"] == "1"
                assert "none starting" in (await r.json())["error"]["message"]
        async with s.get(url + "/ready") as r:
            assert r.status == 503
        text = await metrics(s, url)
    assert 'sagellm_router_admission_rejections_total{kind="no_endpoint",pool="p"} 3.0' in text


async def test_pool_with_a_starting_endpoint_holds(engines, start_router, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import yaml

    (engine,) = await engines(1)
    doc = fast([pool("p", "m", [engine.url], ready=False)])
    doc["discovery"]["pools"][0]["scheduling"] = {"queueTimeoutMs": 30000}
    url = await start_router(doc)
    async with aiohttp.ClientSession() as s:
        waiting = asyncio.create_task(
            s.post(url + "/v1/completions", json={"model": "m", "prompt": "x"})
        )
        await eventually(lambda: queued_in(s, url, 1.0), "the request to wait in the queue")
        assert not waiting.done()  # held: its endpoint is starting
        doc["discovery"]["pools"][0]["endpoints"][0]["ready"] = True
        (tmp_path / "router.yaml").write_text(yaml.safe_dump(doc))
        response = await waiting
        assert response.status == 200, await response.text()


async def test_requests_queued_when_the_pool_dies_get_503_at_once(
    engines, start_router, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    import yaml

    hold = asyncio.Event()
    (engine,) = await engines(1, hold=hold)
    doc = fast([pool("p", "m", [engine.url], max_concurrency=1)])
    doc["discovery"]["pools"][0]["scheduling"] = {"queueTimeoutMs": 30000}
    url = await start_router(doc)
    body = {"model": "m", "prompt": "x"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        running = asyncio.create_task(s.post(url + "/v1/completions", json=body))
        for _ in range(500):
            if engine.seen:
                break
            await asyncio.sleep(0.01)
        queued = asyncio.create_task(s.post(url + "/v1/completions", json=body))
        await eventually(lambda: queued_in(s, url, 1.0), "the request to wait in the queue")
        assert not queued.done()  # waiting for the only slot
        doc["discovery"]["pools"][0]["endpoints"][0]["draining"] = True  # scaled away
        (tmp_path / "router.yaml").write_text(yaml.safe_dump(doc))
        response = await queued  # long before the 30 s queue timeout
        assert response.status == 503
        assert "none starting" in (await response.json())["error"]["message"]
        hold.set()
        assert (await running).status == 200  # the draining endpoint finishes its request


async def test_ejecting_a_hung_engine_releases_requests_waiting_on_it(
    engines, start_router
) -> None:  # type: ignore[no-untyped-def]
    hung, good = await engines(2)
    hung.hang = True
    doc = fast([pool("p", "m", [hung.url, good.url])])
    doc["timeouts"]["read_idle_s"] = 30  # a non-streaming answer may take this long
    url = await start_router(doc)
    plain, stream = {"model": "m", "prompt": "x"}, {"model": "m", "prompt": "x", "stream": True}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        waiting = asyncio.create_task(s.post(url + "/v1/completions", json=plain))  # to p-0
        for _ in range(500):
            if hung.seen:
                break
            await asyncio.sleep(0.01)
        for _ in range(2):  # round robin: p-1, then p-0 (first-byte timeout: ejected as hung)
            async with s.post(url + "/v1/completions", json=stream) as r:
                assert r.status == 200
                await r.read()
        response = await waiting  # released by the ejection, retried on p-1
        assert response.status == 200
        assert response.headers["X-Sagellm-Instance"] == "p-1"
        text = await metrics(s, url)
    assert 'sagellm_router_retries_total{endpoint="p-0",pool="p",reason="ejected"} 1.0' in text
