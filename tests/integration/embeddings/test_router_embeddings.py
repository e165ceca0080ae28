"""The router's /v1/embeddings: embed pools only, same strategies, resilience and metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

Starter = Callable[..., Awaitable[str]]


def _config(embed: list[str], gen: list[str], **extra: Any) -> dict[str, Any]:
    pools = [
        {"name": "emb-pool", "model": "emb", "task": "embed", "routing": "round_robin",
         "endpoints": [{"url": u, "instance": f"emb-{i}"} for i, u in enumerate(embed)]},
        {"name": "gen-pool", "model": "gen",
         "endpoints": [{"url": u, "instance": f"gen-{i}"} for i, u in enumerate(gen)]},
    ]  # fmt: skip
    return {"discovery": {"type": "static", "pools": pools}, "scrape": {"enabled": False},
            "retries": {"backoff_initial_s": 0}, **extra}  # fmt: skip


async def _post(url: str, body: object) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with aiohttp.ClientSession() as s, s.post(url, json=body) as r:
        return r.status, await r.json(content_type=None), dict(r.headers)


@pytest.fixture
async def fleet(sim: Starter, router: Starter) -> str:
    embed = [await sim("emb", runner="pooling", sim_embedding_dim=8) for _ in range(2)]
    return await router(_config(embed, [await sim("gen")], limits={"max_embedding_inputs": 4}))


async def test_embeddings_are_routed_across_the_embed_pool(fleet: str) -> None:
    served = []
    for i in range(4):
        status, body, headers = await _post(
            f"{fleet}/v1/embeddings", {"model": "emb", "input": [f"text {i}", "more"]}
        )
        assert status == 200, body
        assert len(body["data"]) == 2
        assert len(body["data"][0]["embedding"]) == 8
        served.append(headers["X-Sagellm-Instance"])
    assert served == ["emb-0", "emb-1", "emb-0", "emb-1"]  # the pool's round_robin
    async with aiohttp.ClientSession() as s, s.get(f"{fleet}/metrics") as r:
        metrics = await r.text()
    labels = 'endpoint="emb-1",model="emb",pool="emb-pool",status="200"'
    assert f"sagellm_router_requests_total{{{labels}}} 2.0" in metrics
    assert 'sagellm_router_tokens_total{direction="in",model="emb"}' in metrics


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/v1/completions", {"model": "emb", "prompt": "hi"}, "is an embedding model"),
        (
            "/v1/chat/completions",
            {"model": "emb", "messages": [{"role": "user", "content": "x"}]},
            "use /v1/embeddings",
        ),
        ("/v1/embeddings", {"model": "gen", "input": "hi"}, "is a generative model"),
        ("/v1/embeddings", {"model": "emb", "input": []}, "must not be an empty array"),
        ("/v1/embeddings", {"model": "emb", "input": ["a", {"x": 1}]}, "input[1] must be a string"),
        ("/v1/embeddings", {"model": "emb", "input": ["a"] * 5}, "at most 4 are allowed"),
        ("/v1/embeddings", {"model": "emb", "input": ""}, "input[0] is empty"),
        ("/v1/embeddings", {"model": "emb"}, "'type': 'missing', 'loc': 'body.input'"),
        ("/v1/embeddings", {"model": "emb", "input": "x", "dimensions": -1}, "dimensions"),
    ],
)
async def test_wrong_task_and_bad_input_are_400(
    fleet: str, path: str, body: dict[str, Any], fragment: str
) -> None:
    status, answer, _ = await _post(fleet + path, body)
    assert status == 400
    assert fragment in answer["error"]["message"]


@pytest.mark.parametrize("inputs", [[1, 2, 3], [[5, 6], [7]], ["a", "b"], "c"])
async def test_every_input_form_vllm_accepts_is_served(fleet: str, inputs: object) -> None:
    status, answer, _ = await _post(f"{fleet}/v1/embeddings", {"model": "emb", "input": inputs})
    assert status == 200, answer
    assert len(answer["data"]) == (2 if inputs == [[5, 6], [7]] or inputs == ["a", "b"] else 1)


async def test_dead_embed_endpoint_is_retried_elsewhere(sim: Starter, router: Starter) -> None:
    live = await sim("emb", runner="pooling", sim_embedding_dim=4)
    base = await router(_config(["http://127.0.0.1:9", live], [], health={"failure_threshold": 1}))
    for _ in range(3):
        status, _, headers = await _post(f"{base}/v1/embeddings", {"model": "emb", "input": "x"})
        assert status == 200
        assert headers["X-Sagellm-Instance"] == "emb-1"
    async with aiohttp.ClientSession() as s, s.get(f"{base}/metrics") as r:
        metrics = await r.text()
    assert (
        'sagellm_router_endpoint_ejections_total{endpoint="emb-0",pool="emb-pool",'
        'reason="connect_error"} 1.0' in metrics
    )
