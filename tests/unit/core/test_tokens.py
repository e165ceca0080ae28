"""Core's one token estimate: what it counts, how request bodies are counted, and that a
simulated engine's prompt length is exactly the router's estimate."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sagellm_core.sim_tokens import tokenize
from sagellm_core.tokens import estimate_tokens, prompt_tokens
from sagellm_sim.config import SimConfig
from sagellm_sim.server import build_app
from sagellm_sim.tokenizer import count_tokens


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("the quick brown fox", 4),
        ("internationalization", 4),  # long words split into <= 6-letter pieces
        ("你好世界", 4),  # one token per CJK character (characters/4 would say 1)
        ("x = 12345;", 5),  # x, " =", " 123", "45", ";"
    ],
)
def test_estimate(text: str, tokens: int) -> None:
    assert estimate_tokens(text) == tokens == len(tokenize(text))


def test_the_simulator_counts_with_the_same_function() -> None:
    assert count_tokens is estimate_tokens


@pytest.mark.parametrize(
    ("body", "tokens", "parts"),
    [
        ({"prompt": "the quick brown fox"}, 4, 1),
        ({"prompt": [1, 2, 3]}, 3, 0),  # token ids count exactly, never through the counter
        ({"prompt": [[1, 2], [3]]}, 3, 0),
        ({"messages": [{"role": "user", "content": "the quick"}]}, 2, 1),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": "fox"}]}]}, 1, 1),
        ({"input": ["the", "quick"]}, 2, 2),  # embeddings
        ({}, 0, 0),
    ],
)
def test_prompt_tokens_of_a_body(body: dict[str, Any], tokens: int, parts: int) -> None:
    assert prompt_tokens(body) == tokens
    ids = tokens if parts == 0 else 0
    assert prompt_tokens(body, lambda text: 1000) == ids + 1000 * parts


async def test_a_simulated_engine_reports_the_estimate_as_its_prompt_length() -> None:
    app = build_app(SimConfig(model="m", sim_time_scale=0.01, max_model_len=2048))
    prompt = "Routers estimate; engines count. 你好, 12345 tokens! " * 5
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        body = {"model": "m", "prompt": prompt, "max_tokens": 1}
        resp = await client.post("/v1/completions", json=body)
        usage = (await resp.json())["usage"]
    assert usage["prompt_tokens"] == estimate_tokens(prompt) == prompt_tokens({"prompt": prompt})
