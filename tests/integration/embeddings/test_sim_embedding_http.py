"""The simulator's /v1/embeddings (pooling runner) over real HTTP."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

Starter = Callable[..., Awaitable[str]]


async def _post(url: str, body: object) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with aiohttp.ClientSession() as s, s.post(url, json=body) as r:
        return r.status, await r.json(content_type=None)


async def test_openai_shape_deterministic_unit_vectors(sim: Starter) -> None:
    base = await sim("emb", runner="pooling", sim_embedding_dim=24)
    status, body = await _post(f"{base}/v1/embeddings", {"model": "emb", "input": ["a b", "c"]})
    assert status == 200
    assert body["object"] == "list"
    assert body["model"] == "emb"
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert all(d["object"] == "embedding" and len(d["embedding"]) == 24 for d in body["data"])
    for d in body["data"]:
        assert math.isclose(math.fsum(x * x for x in d["embedding"]), 1.0, rel_tol=1e-9)
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    again = await _post(f"{base}/v1/embeddings", {"model": "emb", "input": "a b"})
    assert again[1]["data"][0]["embedding"] == body["data"][0]["embedding"]
    assert body["data"][0]["embedding"] != body["data"][1]["embedding"]


async def test_dimensions_and_default_from_profile(sim: Starter) -> None:
    base = await sim("emb", convert="embed")
    _, body = await _post(f"{base}/v1/embeddings", {"input": "x", "dimensions": 5})
    assert len(body["data"][0]["embedding"]) == 5
    _, body = await _post(f"{base}/v1/embeddings", {"input": "x"})
    assert len(body["data"][0]["embedding"]) > 5  # the profile model's hidden size


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"input": []}, "empty array"),
        ({"input": ""}, "input[0] is empty"),
        ({"input": ["ok", 3]}, "input[1] must be a string"),
        ({"input": ["x"] * 2049}, "at most 2048"),
        ({"input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "other", "input": "x"}, "does not exist"),
    ],
)
async def test_bad_inputs(sim: Starter, body: dict, fragment: str) -> None:  # type: ignore[type-arg]
    base = await sim("emb", runner="pooling")
    status, answer = await _post(f"{base}/v1/embeddings", body)
    assert status in (400, 404)
    assert fragment in answer["error"]["message"]


async def test_routes_follow_the_task_as_in_vllm(sim: Starter) -> None:
    pooling = await sim("emb", runner="pooling")
    generate = await sim("gen")
    status, body = await _post(f"{pooling}/v1/completions", {"model": "emb", "prompt": "hi"})
    assert (status, body) == (404, {"detail": "Not Found"})
    status, body = await _post(f"{generate}/v1/embeddings", {"model": "gen", "input": "hi"})
    assert (status, body) == (404, {"detail": "Not Found"})


async def test_embedding_traffic_counts_in_engine_metrics(sim: Starter) -> None:
    base = await sim("emb", runner="pooling")
    await _post(f"{base}/v1/embeddings", {"input": ["one two three", "four"]})
    async with aiohttp.ClientSession() as s, s.get(f"{base}/metrics") as r:
        text = await r.text()
    line = next(x for x in text.splitlines() if x.startswith("vllm:prompt_tokens_total{"))
    assert float(line.rsplit(" ", 1)[1]) > 0
