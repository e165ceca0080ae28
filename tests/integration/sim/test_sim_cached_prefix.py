"""``POST /sim/cached_prefix`` (dev mode): the engine's cached prefix for a request body.

The route must answer exactly what the engine then counts as cached for the same body
(``usage.prompt_tokens_details.cached_tokens``), chat template and ``cache_salt`` included.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from sim_helpers import StartSim

SYSTEM = "Tenant 7 rules:" + " alpha beta gamma delta" * 60  # ~240 tokens


def chat(system: str, question: str, **extra: Any) -> dict[str, Any]:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    return {"model": "sim-model", "messages": messages, "max_tokens": 2, **extra}


async def post(http: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    async with http.post(url, data=json.dumps(body)) as resp:
        return resp.status, await resp.json()


async def cached_by_engine(http: aiohttp.ClientSession, base: str, body: dict[str, Any]) -> int:
    path = "/v1/chat/completions" if "messages" in body else "/v1/completions"
    status, answer = await post(http, base + path, body)
    assert status == 200, answer
    return int(answer["usage"]["prompt_tokens_details"]["cached_tokens"])


@pytest.mark.parametrize(
    ("probe", "expect_hit"),
    [
        (chat(SYSTEM, "what now?"), True),  # the same system prompt, another question
        (chat(SYSTEM, "what now?", cache_salt="other"), False),  # another cache namespace
        (chat("Tenant 8 rules:" + SYSTEM[15:], "what now?"), False),  # first block differs
        ({"model": "sim-model", "prompt": SYSTEM, "max_tokens": 2}, False),  # no chat template
    ],
)
async def test_answer_matches_what_the_engine_then_counts(
    start_sim: StartSim, http: aiohttp.ClientSession, probe: dict[str, Any], expect_hit: bool
) -> None:
    base = await start_sim(dev_mode=True, enable_prompt_tokens_details=True)
    status, before = await post(http, base + "/sim/cached_prefix", probe)
    assert (status, before["cached_tokens"]) == (200, 0)
    await cached_by_engine(http, base, chat(SYSTEM, "first question"))
    status, answer = await post(http, base + "/sim/cached_prefix", probe)
    assert status == 200, answer
    assert (answer["cached_tokens"] > 200) is expect_hit, answer
    assert answer["cached_tokens"] % answer["block_size"] == 0
    assert answer["cached_tokens"] < answer["prompt_tokens"]
    assert answer["data_parallel_rank"] == 0
    assert answer["cached_tokens"] == await cached_by_engine(http, base, probe)


async def test_bad_bodies_get_the_engines_errors(
    start_sim: StartSim, http: aiohttp.ClientSession
) -> None:
    base = await start_sim(dev_mode=True)
    status, answer = await post(http, base + "/sim/cached_prefix", {"max_tokens": 3})
    assert (status, answer["error"]["param"]) == (400, "prompt")
    status, answer = await post(http, base + "/sim/cached_prefix", chat(SYSTEM, "q", model="x"))
    assert (status, answer["error"]["param"]) == (404, "model")


async def test_served_only_in_dev_mode(start_sim: StartSim, http: aiohttp.ClientSession) -> None:
    base = await start_sim(dev_mode=False)
    status, _ = await post(http, base + "/sim/cached_prefix", chat(SYSTEM, "q"))
    assert status == 404
