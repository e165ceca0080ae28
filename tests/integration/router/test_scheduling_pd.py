"""Admission, scheduling policies and PD-separated execution through the router, against real
simulator processes (fast time scale): PD legs visible in both engines' /metrics, fallbacks,
priority order under overload, rate limits, bad headers, the admin endpoints."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from router_fakes import router_yaml
from router_procs import Proc, free_port, start_sims

PD = json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_both"})
LONG = "The quick brown fox jumps over the lazy dog near the river bank. " * 40  # ~650 tokens


@pytest.fixture(scope="module")
def fleet() -> Iterator[dict[str, Proc]]:
    prefill, decode = start_sims(2, "tiny", "--kv-transfer-config", PD)
    (general,) = start_sims(1, "tiny", "--max-num-seqs", "4", time_scale=1.0)
    yield {"prefill": prefill, "decode": decode, "general": general}
    for p in (prefill, decode, general):
        p.stop()


def pd_pool(prefill: str, decode: str, **scheduling: Any) -> dict[str, Any]:
    return {
        "name": "pd",
        "model": "tiny",
        "scheduling": {"pdThresholdInputTokens": 200, **scheduling},
        "endpoints": [
            {"url": prefill, "role": "Prefill", "instance": "P"},
            {"url": decode, "role": "Decode", "instance": "D"},
        ],
    }


async def counter(url: str, name: str) -> float:
    async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
        text = await r.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


async def complete(url: str, prompt: str, headers: dict[str, str] | None = None, **kw: Any):  # type: ignore[no-untyped-def]
    body = {"model": "tiny", "prompt": prompt, "max_tokens": 4, "stream": True, **kw}
    async with (
        aiohttp.ClientSession() as s,
        s.post(url + "/v1/completions", json=body, headers=headers or {}) as r,
    ):
        text = await r.text()
        return r.status, r.headers, text


async def test_long_prompts_prefill_then_decode_short_ones_go_straight_to_decode(
    fleet, start_router
) -> None:  # type: ignore[no-untyped-def]
    p, d = fleet["prefill"], fleet["decode"]
    url = await start_router(router_yaml([pd_pool(p.url, d.url)]))
    tokens = "vllm:prefix_cache_queries_total"  # prompt positions the engine looked up/computed
    before = (await counter(p.url, tokens), await counter(d.url, tokens))
    status, headers, text = await complete(url, LONG, {"x-request-id": "pd-long-1"})
    assert status == 200
    assert text.rstrip().endswith("data: [DONE]")
    assert headers["X-Sagellm-Prefill-Instance"] == "P"
    assert headers["X-Sagellm-Instance"] == "D"
    mid = (await counter(p.url, tokens), await counter(d.url, tokens))
    prefilled, decoded = mid[0] - before[0], mid[1] - before[1]
    assert prefilled > 300, "the prefill engine computed the prompt"
    assert decoded < prefilled / 10, "the decode engine skipped the prefill"
    status, headers, _ = await complete(url, "short prompt")
    assert status == 200
    assert "X-Sagellm-Prefill-Instance" not in headers
    after = (await counter(p.url, tokens), await counter(d.url, tokens))
    assert after[0] == mid[0], "short prompts never reach the prefill engine"
    assert after[1] > mid[1]
    assert await counter(url, "sagellm_router_pd_requests_total") == 2


async def test_prefill_failures_fall_back_to_decode_only(fleet, start_router) -> None:  # type: ignore[no-untyped-def]
    dead = f"http://127.0.0.1:{free_port()}"  # a killed prefill engine: nothing listens
    no_connector = fleet["general"].url  # a "prefill" engine without a KV connector
    for prefill, reason in (
        (dead, "prefill_connect_error"),
        (no_connector, "no_kv_transfer_params"),
    ):
        url = await start_router(router_yaml([pd_pool(prefill, fleet["decode"].url)]))
        status, headers, text = await complete(url, LONG)
        assert status == 200
        assert "data: [DONE]" in text
        assert "X-Sagellm-Prefill-Instance" not in headers
        metrics = await _text(url + "/metrics")
        assert f'sagellm_router_pd_fallbacks_total{{pool="pd",reason="{reason}"}} 1.0' in metrics
    # a dead prefill engine is ejected like any other (failure_threshold 2), with the reason
    # the proxy gives the same failure
    url = await start_router(router_yaml([pd_pool(dead, fleet["decode"].url)]))
    for i in range(2):  # different prompts: nothing cached on the decode engine
        assert (await complete(url, f"{i} {LONG}"))[0] == 200
    metrics = await _text(url + "/metrics")
    ejected = 'sagellm_router_endpoint_ejections_total{endpoint="P",pool="pd",'
    assert ejected + 'reason="connect_error"} 1.0' in metrics


async def _text(url: str) -> str:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return await r.text()


ADMIN_KEY = {"Authorization": "Bearer k-admin"}  # admin routes on the main port need a key


async def _status(url: str, pool: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(url + "/admin/status", headers=ADMIN_KEY) as r:
        return (await r.json())["pools"][pool]  # type: ignore[no-any-return]


async def _wait(cond: Any, url: str, pool: str) -> dict[str, Any]:
    for _ in range(500):
        status = await _status(url, pool)
        if cond(status):
            return status
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition never held; last status {status}")


async def test_priority_order_under_overload_and_disconnect_leaves_queue(
    fleet, start_router, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TEST_ROUTER_KEYS", "k-admin")
    pool = {"name": "g", "model": "tiny", "policy": "priority",
            "endpoints": [{"url": fleet["general"].url, "max_concurrency": 1}]}  # fmt: skip
    auth = {"api_keys_env": "TEST_ROUTER_KEYS"}
    url = await start_router(router_yaml([pool], admin={"enabled": True}, auth=auth))
    done: list[str] = []

    async def send(name: str, priority: str, tokens: int = 8) -> None:
        headers = {"x-priority": priority, "x-request-id": name, **ADMIN_KEY}
        status, _, _ = await complete(url, name, headers, max_tokens=tokens, ignore_eos=True)
        assert status == 200
        done.append(name)

    blocker = asyncio.create_task(send("blocker", "NORMAL", 400))
    await _wait(lambda s: s["active"] == 1, url, "g")
    tasks = []
    for i, (name, prio) in enumerate([("low-0", "LOW"), ("low-1", "LOW"), ("gone", "LOW"),
                                      ("high-0", "HIGH"), ("high-1", "HIGH")]):  # fmt: skip
        tasks.append(asyncio.create_task(send(name, prio)))
        await _wait(lambda s, n=i + 1: s["queued"] == n, url, "g")
    tasks[2].cancel()  # the client of "gone" disconnects while queued
    status = await _wait(lambda s: s["queued"] == 4, url, "g")
    assert status["cancelled"] == 1
    await asyncio.gather(blocker, *tasks[:2], *tasks[3:])
    assert done == ["blocker", "high-0", "high-1", "low-0", "low-1"]
    waits = status["waits"]
    assert set(waits) <= {"NORMAL", "LOW", "HIGH"}


async def test_rate_limit_answers_429_with_retry_after(fleet, start_router) -> None:  # type: ignore[no-untyped-def]
    pool = {"name": "g", "model": "tiny", "endpoints": [{"url": fleet["general"].url}],
            "scheduling": {"rateLimits": {"requestsPerMinute": 2}}}  # fmt: skip
    url = await start_router(router_yaml([pool]))
    alice = {"x-user-id": "alice"}
    assert [(await complete(url, "hi", alice))[0] for _ in range(2)] == [200, 200]
    status, headers, text = await complete(url, "hi", alice)
    assert status == 429
    assert int(headers["Retry-After"]) >= 1
    assert json.loads(text)["error"]["type"] == "RateLimitError"
    assert (await complete(url, "hi", {"x-user-id": "bob"}))[0] == 200
    metrics = await _text(url + "/metrics")
    assert 'sagellm_router_admission_rejections_total{kind="rate_limited",pool="g"} 1.0' in metrics


async def test_bad_metadata_header_is_a_400_naming_it(fleet, start_router) -> None:  # type: ignore[no-untyped-def]
    pool = {"name": "g", "model": "tiny", "endpoints": [{"url": fleet["general"].url}]}
    url = await start_router(router_yaml([pool]))
    for header, value in (("x-priority", "URGENT"), ("x-slo-ttft-ms", "-5")):
        status, _, text = await complete(url, "hi", {header: value})
        assert status == 400
        assert json.loads(text)["error"]["param"] == header


async def test_admin_policy_switch_needs_the_key_and_reports(
    fleet, start_router, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TEST_ROUTER_KEYS", "k1")
    pool = {"name": "g", "model": "tiny", "policy": "adaptive",
            "endpoints": [{"url": fleet["general"].url}]}  # fmt: skip
    doc = router_yaml([pool], admin={"enabled": True}, auth={"api_keys_env": "TEST_ROUTER_KEYS"})
    url = await start_router(doc)
    key = {"Authorization": "Bearer k1"}
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/admin/policy", json={"pool": "g", "policy": "priority"}) as r:
            assert r.status == 401
        async with s.get(url + "/admin/status", headers=key) as r:
            status = (await r.json())["pools"]["g"]
        assert status["policy"] == "adaptive"
        assert status["policy_status"]["active"] in {"fifo", "cost_optimized"}
        assert status["policy_status"]["reason"]
        async with s.post(
            url + "/admin/policy", json={"pool": "g", "policy": "slo"}, headers=key
        ) as r:
            assert r.status == 400
            assert "known" in (await r.json())["error"]["message"]
        async with s.post(
            url + "/admin/policy", json={"pool": "g", "policy": "priority"}, headers=key
        ) as r:
            assert r.status == 200
            assert (await r.json())["pools"]["g"]["policy"] == "priority"
        async with s.get(url + "/metrics") as r:
            text = await r.text()
        assert (
            'sagellm_router_scheduling_policy{active="priority",policy="priority",pool="g"} 1.0'
            in text
        )


async def test_admin_routes_are_off_by_default(fleet, start_router) -> None:  # type: ignore[no-untyped-def]
    pool = {"name": "g", "model": "tiny", "endpoints": [{"url": fleet["general"].url}]}
    url = await start_router(router_yaml([pool]))
    async with aiohttp.ClientSession() as s, s.get(url + "/admin/status") as r:
        assert r.status == 404
