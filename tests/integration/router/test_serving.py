"""The router serves the OpenAI API over real HTTP; the official openai client works unchanged."""

from __future__ import annotations

import aiohttp
import openai
import pytest
from router_fakes import pool, router_yaml


@pytest.fixture
async def two_pools(engines, start_router):  # type: ignore[no-untyped-def]
    a = await engines(2, model="alpha")
    b = await engines(1, model="beta")
    doc = router_yaml(
        [pool("pa", "alpha", [e.url for e in a]), pool("pb", "beta", [e.url for e in b])]
    )
    return await start_router(doc), a, b


async def test_openai_client_completions_and_chat(two_pools) -> None:  # type: ignore[no-untyped-def]
    base, _a, _ = two_pools
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="unused")
    completion = await client.completions.create(model="alpha", prompt="hi", max_tokens=3)
    assert completion.choices[0].text in {"e0", "e1"}
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3
    chat = await client.chat.completions.create(
        model="beta", messages=[{"role": "user", "content": "hello"}]
    )
    assert chat.usage is not None
    assert chat.usage.prompt_tokens == 5
    await client.close()


async def test_openai_client_streaming_passes_chunks_and_usage(two_pools) -> None:  # type: ignore[no-untyped-def]
    base, _, _ = two_pools
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="unused")
    stream = await client.completions.create(model="beta", prompt="hi", stream=True)
    texts, usage = [], None
    async for chunk in stream:
        texts += [c.text for c in chunk.choices]
        usage = chunk.usage or usage
    assert texts == [" e2-0", " e2-1", " e2-2"]
    assert usage is not None
    assert usage.total_tokens == 8
    await client.close()


async def test_models_health_ready_metrics(two_pools) -> None:  # type: ignore[no-untyped-def]
    base, _, _ = two_pools
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="unused")
    assert sorted(m.id for m in (await client.models.list()).data) == ["alpha", "beta"]
    await client.completions.create(model="alpha", prompt="x")
    await client.close()
    async with aiohttp.ClientSession() as s:
        async with s.get(base + "/health") as r:
            assert r.status == 200
        async with s.get(base + "/ready") as r:
            assert r.status == 200
        async with s.get(base + "/metrics") as r:
            text = await r.text()
    assert (
        'sagellm_router_requests_total{endpoint="pa-0",model="alpha",pool="pa",status="200"}'
        in text
        or (
            'sagellm_router_requests_total{endpoint="pa-1",model="alpha",pool="pa",status="200"}'
            in text
        )
    )
    assert 'sagellm_router_tokens_total{direction="out",model="alpha"} 3.0' in text


async def test_ready_is_503_without_endpoints(start_router) -> None:  # type: ignore[no-untyped-def]
    base = await start_router(router_yaml([]))
    async with aiohttp.ClientSession() as s, s.get(base + "/ready") as r:
        assert r.status == 503
        assert (await r.json())["error"]["type"] == "ServiceUnavailableError"


async def test_request_id_is_propagated_or_replaced(two_pools) -> None:  # type: ignore[no-untyped-def]
    base, a, _ = two_pools
    body = {"model": "alpha", "prompt": "x"}
    async with aiohttp.ClientSession() as s:
        async with s.post(
            base + "/v1/completions", json=body, headers={"x-request-id": "abc-1"}
        ) as r:
            assert r.headers["X-Request-Id"] == "abc-1"
        weird = {"x-request-id": "\u00e9" * 3}
        async with s.post(base + "/v1/completions", json=body, headers=weird) as r:
            assert r.status == 200
            assert len(r.headers["X-Request-Id"]) == 32
    assert "abc-1" in a[0].seen + a[1].seen
