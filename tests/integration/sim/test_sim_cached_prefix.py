"""``POST /sim/cached_prefix`` (dev mode): the engine's cached prefix for a request body.

The route must answer exactly what the engine then counts as cached for the same body
(``usage.prompt_tokens_details.cached_tokens``), chat template and ``cache_salt`` included;
``cached_tokens_with_pending`` must be what it counts once the requests queued and running on
it have been prefilled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from sim_helpers import StartSim, scrape

from e2e.waiting import eventually

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


LONG = "Tenant 9 rules:" + " alpha beta gamma delta" * 400  # ~1600 tokens
Tasks = list["asyncio.Task[tuple[int, Any]]"]


async def gauge(http: aiohttp.ClientSession, base: str, name: str) -> float:
    return (await scrape(http, base))[f"vllm:{name}{{engine=0}}"]


def background(http: aiohttp.ClientSession, base: str, body: dict[str, Any]) -> Any:
    return asyncio.create_task(post(http, base + "/v1/chat/completions", body))


async def cached_done(http: aiohttp.ClientSession, base: str) -> tuple[Tasks, Tasks]:
    """The long system prompt was computed by a finished request."""
    await cached_by_engine(http, base, chat(LONG, "earlier question"))
    return [], []


async def queued(http: aiohttp.ClientSession, base: str) -> tuple[Tasks, Tasks]:
    """The only batch slot is busy with an unrelated prompt: the long prompt waits."""
    blocker = background(http, base, chat("unrelated", "talk", max_tokens=3000, ignore_eos=True))
    await eventually(lambda: gauge(http, base, "num_requests_running"), "the blocker running")
    waiting = background(http, base, chat(LONG, "earlier question"))
    await eventually(lambda: gauge(http, base, "num_requests_waiting"), "a queued request")
    return [blocker], [waiting]


async def running(http: aiohttp.ClientSession, base: str) -> tuple[Tasks, Tasks]:
    """32-token prefill chunks: the long prompt is still being prefilled."""
    task = background(http, base, chat(LONG, "earlier question"))
    await eventually(lambda: gauge(http, base, "num_requests_running"), "the prefill running")
    return [], [task]


async def evicted(http: aiohttp.ClientSession, base: str) -> tuple[Tasks, Tasks]:
    """Computed, then two unrelated prompts needed the blocks (160 blocks of 16 tokens)."""
    await cached_done(http, base)
    for i in range(2):
        await cached_by_engine(http, base, chat(f"Other {i}:" + " one two" * 700, "q"))
    return [], []


# a setup returns the requests to cancel and those to wait for once the route has answered
Setup = Callable[[aiohttp.ClientSession, str], Awaitable[tuple[Tasks, Tasks]]]
# config, setup, the answer's (cached_tokens, cached_tokens_with_pending): none, part or all of
# the long system prompt
ROUTE_CASES: list[tuple[str, dict[str, Any], Setup, tuple[str, str]]] = [
    ("cached", {}, cached_done, ("all", "all")),
    ("queued", {"max_num_seqs": 1, "sim_time_scale": 1.0}, queued, ("none", "all")),
    ("running", {"max_num_batched_tokens": 32, "sim_time_scale": 2.0}, running, ("part", "all")),
    ("evicted", {"num_gpu_blocks_override": 160, "max_model_len": 2048}, evicted,
     ("none", "none")),
]  # fmt: skip


def share(tokens: int, system_tokens: int) -> str:
    return "none" if tokens == 0 else "all" if tokens >= system_tokens else "part"


@pytest.mark.parametrize(("config", "setup", "expect"), [c[1:] for c in ROUTE_CASES],
                         ids=[c[0] for c in ROUTE_CASES])  # fmt: skip
async def test_with_pending_counts_queued_and_running_prompts(
    start_sim: StartSim, http: aiohttp.ClientSession, config: dict[str, Any], setup: Setup,
    expect: tuple[str, str],
) -> None:  # fmt: skip
    base = await start_sim(dev_mode=True, enable_prompt_tokens_details=True, **config)
    probe = chat(LONG, "what now?")
    cancel, wait = await setup(http, base)
    status, answer = await post(http, base + "/sim/cached_prefix", probe)
    assert status == 200, answer
    for task in cancel:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for task in wait:
        assert (await task)[0] == 200
    system_tokens = 1600 // answer["block_size"] * answer["block_size"]  # whole blocks of LONG
    now, later = answer["cached_tokens"], answer["cached_tokens_with_pending"]
    assert (share(now, system_tokens), share(later, system_tokens)) == expect, answer
    # what the engine counts for the probe once the queued and running work is done
    assert later == await cached_by_engine(http, base, probe)
