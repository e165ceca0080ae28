"""The benchmark's ``oracle`` plugin through a real router: before each pick it asks every
simulator (dev mode) what it holds of the request, so a chat whose system prompt one engine has
cached goes to that engine, and a prompt nobody holds is spread by load."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from router_fakes import pool, router_yaml

from sagellm_router.bench import oracle
from sagellm_sim.config import SimConfig
from sagellm_sim.server import build_app

SYSTEM = "Tenant 3 rules:" + " alpha beta gamma delta" * 80  # ~320 tokens


def chat(question: str, system: str = SYSTEM) -> dict[str, Any]:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    return {"model": "tiny", "messages": messages, "max_tokens": 2}


@pytest.fixture
async def sims() -> AsyncIterator[list[str]]:
    servers = []
    for _ in range(3):
        config = SimConfig(model="tiny", sim_profile="tiny", sim_time_scale=0.01, dev_mode=True)
        server = TestServer(build_app(config), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
    yield [str(s.make_url("")).rstrip("/") for s in servers]
    for server in servers:
        await server.close()


async def _served_by(http: aiohttp.ClientSession, base: str, bodies: list[Any]) -> Counter[str]:
    seen: Counter[str] = Counter()
    for body in bodies:  # one after another: every engine is idle when the next one is routed
        async with http.post(f"{base}/v1/chat/completions", json=body) as r:
            assert r.status == 200, await r.text()
            seen[r.headers["X-Sagellm-Instance"]] += 1
    return seen


async def test_oracle_routes_to_the_engine_holding_the_prefix(
    sims: list[str], start_router: Callable[..., Awaitable[str]]
) -> None:
    doc = router_yaml([pool("p", "tiny", sims, routing="oracle")], plugins=[oracle.PLUGIN])
    base = await start_router(doc)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{sims[1]}/v1/chat/completions", json=chat("warm up")) as r:
            assert r.status == 200  # straight to engine 1: only it holds the system prompt
        held = await _served_by(http, base, [chat(f"question {i}") for i in range(8)])
        assert held == {"p-1": 8}
        fresh = [chat("q", system=f"Tenant {i} has its own rules" * 20) for i in range(12)]
        spread = await _served_by(http, base, fresh)
    assert len(spread) > 1  # no one holds these: the least loaded (ties at random) wins
