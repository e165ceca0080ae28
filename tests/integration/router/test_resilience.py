"""Retries, passive health, mid-stream failures, draining, client disconnects, admission limit."""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
import yaml
from router_fakes import pool, router_yaml

from e2e.waiting import eventually

BODY = {"model": "m", "prompt": "x"}


async def gauge(s: aiohttp.ClientSession, url: str, state: str) -> float:
    async with s.get(url + "/metrics") as r:
        text = await r.text()
    prefix = f'sagellm_router_endpoints{{pool="p",state="{state}"}} '
    values = [float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)]
    return values[0] if values else 0.0


async def wait_until_gauge(s: aiohttp.ClientSession, url: str, state: str, value: float) -> None:
    async def reached() -> bool:
        return await gauge(s, url, state) == value

    await eventually(reached, f"endpoints gauge {state} to reach {value}")


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_5xx_and_connect_errors_retry_on_another_endpoint(engines, start_router) -> None:  # type: ignore[no-untyped-def]
    bad, good = await engines(2)
    bad.fail_status = 500
    url = await start_router(router_yaml([pool("p", "m", [bad.url, closed_port_url(), good.url])]))
    async with aiohttp.ClientSession() as s:
        for _ in range(6):
            async with s.post(url + "/v1/completions", json=BODY) as r:
                assert r.status == 200
                assert r.headers["X-Sagellm-Instance"] == "p-2"
        async with s.get(url + "/metrics") as r:
            text = await r.text()
    ejections = "sagellm_router_endpoint_ejections_total"
    assert f'{ejections}{{endpoint="p-0",pool="p",reason="status_500"}} 1.0' in text
    assert f'{ejections}{{endpoint="p-1",pool="p",reason="connect_error"}} 1.0' in text
    assert len(bad.seen) == 2  # failure_threshold=2, then ejected and no longer tried


async def test_ejected_endpoint_is_readmitted_after_probe(engines, start_router) -> None:  # type: ignore[no-untyped-def]
    flaky, good = await engines(2)
    flaky.fail_status = 503
    url = await start_router(router_yaml([pool("p", "m", [flaky.url, good.url])]))
    async with aiohttp.ClientSession() as s:
        for _ in range(4):
            async with s.post(url + "/v1/completions", json=BODY) as r:
                assert r.status == 200
        assert await gauge(s, url, "ejected") == 1.0
        flaky.fail_status = None
        await wait_until_gauge(s, url, "routable", 2.0)
        served = set()
        for _ in range(4):
            async with s.post(url + "/v1/completions", json=BODY) as r:
                served.add(r.headers["X-Sagellm-Instance"])
    assert served == {"p-0", "p-1"}


async def test_all_endpoints_failing_returns_upstream_error(engines, start_router) -> None:  # type: ignore[no-untyped-def]
    engines_ = await engines(2, fail_status=500)
    url = await start_router(router_yaml([pool("p", "m", [e.url for e in engines_])]))
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/completions", json=BODY) as r:
        assert r.status == 500
        assert (await r.json())["error"]["message"] == "boom"
    assert sum(len(e.seen) for e in engines_) == 2


async def test_mid_stream_death_ends_with_error_event(engines, start_router) -> None:  # type: ignore[no-untyped-def]
    (engine,) = await engines(1, chunks=4, die_after=2)
    url = await start_router(router_yaml([pool("p", "m", [engine.url])]))
    async with (
        aiohttp.ClientSession() as s,
        s.post(url + "/v1/completions", json={**BODY, "stream": True}) as r,
    ):
        assert r.status == 200
        text = (await r.read()).decode()
    events = [e.removeprefix("data: ") for e in text.strip().split("\n\n")]
    assert [json.loads(e)["choices"][0]["text"] for e in events[:2]] == [" e0-0", " e0-1"]
    error = json.loads(events[2])["error"]
    assert error["code"] == 502
    assert "failed mid-stream" in error["message"]
    assert events[3] == "[DONE]"


async def test_draining_endpoint_gets_no_new_requests_but_finishes(
    engines, start_router, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    hold = asyncio.Event()
    a, b = await engines(2)
    doc = router_yaml([pool("p", "m", [a.url, b.url])])
    url = await start_router(doc)
    async with aiohttp.ClientSession() as s:
        a.hold = hold
        in_flight = asyncio.create_task(s.post(url + "/v1/completions", json=BODY))
        await eventually(lambda: len(a.seen) == 1)
        doc["discovery"]["pools"][0]["endpoints"][0]["draining"] = True
        (tmp_path / "router.yaml").write_text(yaml.safe_dump(doc))
        await wait_until_gauge(s, url, "draining", 1.0)
        for _ in range(4):
            async with s.post(url + "/v1/completions", json=BODY) as r:
                assert r.headers["X-Sagellm-Instance"] == "p-1"
        hold.set()
        response = await in_flight
        assert response.status == 200
        assert (await response.json())["choices"][0]["text"] == "e0"
    assert len(a.seen) == 1


async def test_client_disconnect_cancels_upstream(engines, start_router) -> None:  # type: ignore[no-untyped-def]
    (engine,) = await engines(1, hold=asyncio.Event(), chunks=100, chunk_delay=0.05)
    url = await start_router(router_yaml([pool("p", "m", [engine.url])]))
    async with aiohttp.ClientSession() as s:
        request = asyncio.create_task(s.post(url + "/v1/completions", json=BODY))
        await eventually(lambda: len(engine.seen) == 1)
        request.cancel()
        await eventually(lambda: engine.cancelled == 1)
        async with s.post(url + "/v1/completions", json={**BODY, "stream": True}) as r:
            await r.content.readany()
        await eventually(lambda: engine.cancelled == 2)


async def test_concurrency_limit_answers_429(engines, start_router) -> None:  # type: ignore[no-untyped-def]
    hold = asyncio.Event()
    (engine,) = await engines(1, hold=hold)
    doc = router_yaml([pool("p", "m", [engine.url])], limits={"max_concurrent_requests": 1})
    url = await start_router(doc)
    async with aiohttp.ClientSession() as s:
        first = asyncio.create_task(s.post(url + "/v1/completions", json=BODY))
        await eventually(lambda: len(engine.seen) == 1)
        async with s.post(url + "/v1/completions", json=BODY) as r:
            assert r.status == 429
            assert r.headers["Retry-After"] == "1"
            assert (await r.json())["error"]["type"] == "RateLimitError"
        hold.set()
        assert (await first).status == 200


async def test_load_balanced_follows_scraped_engine_load(engines, start_router) -> None:  # type: ignore[no-untyped-def]
    busy, idle = await engines(2)
    busy.waiting, busy.running, busy.kv = 40, 8, 0.9
    doc = router_yaml(
        [pool("p", "m", [busy.url, idle.url], "load_balanced")],
        scrape={"enabled": True, "interval_s": 0.05},
    )
    url = await start_router(doc)
    await eventually(lambda: busy.scrapes >= 2)  # a whole scrape has completed since start
    async with aiohttp.ClientSession() as s:
        served = set()
        for _ in range(10):
            async with s.post(url + "/v1/completions", json=BODY) as r:
                served.add(r.headers["X-Sagellm-Instance"])
    assert served == {"p-1"}
