"""The engine pods' preStop hook, run as the kubelet runs it (``python3 -c <script> D T port``)
against a real HTTP /metrics endpoint whose load the test controls."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp import web

from sagellm_operator.builders.lifecycle import prestop_hook

PAGE = """# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{engine="0",model_name="my model {{v2}}"}} {running}
vllm:num_requests_waiting{{engine="0",model_name="my model {{v2}}"}} {waiting}
"""


class Engine:
    """A /metrics endpoint: ``busy`` requests running, each read recorded."""

    def __init__(self) -> None:
        self.busy = 0
        self.reads: list[int] = []
        self.read_twice = asyncio.Event()

    async def metrics(self, _: web.Request) -> web.Response:
        self.reads.append(self.busy)
        if len(self.reads) >= 2:
            self.read_twice.set()
        return web.Response(text=PAGE.format(running=self.busy, waiting=0))


@pytest_asyncio.fixture
async def engine() -> AsyncIterator[tuple[Engine, int]]:
    state = Engine()
    app = web.Application()
    app.router.add_get("/metrics", state.metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield state, port
    await runner.cleanup()


async def run_hook(bound: float, drain_s: int, port: int) -> asyncio.subprocess.Process:
    argv = prestop_hook(bound, drain_s, port)["preStop"]["exec"]["command"]
    return await asyncio.create_subprocess_exec(*argv, env={**os.environ, "POD_IP": "127.0.0.1"})


async def test_waits_until_two_consecutive_idle_reads(engine: tuple[Engine, int]) -> None:
    state, port = engine
    state.busy = 3
    hook = await run_hook(0.2, 60, port)
    await asyncio.wait_for(state.read_twice.wait(), 30)
    assert hook.returncode is None  # busy: still waiting
    state.busy = 0
    assert await asyncio.wait_for(hook.wait(), 30) == 0
    assert state.reads[-2:] == [0, 0]
    assert 3 in state.reads


async def test_a_busy_engine_is_waited_for_only_up_to_the_bound(
    engine: tuple[Engine, int],
) -> None:
    state, port = engine
    state.busy = 1
    hook = await run_hook(0.1, 2, port)
    assert await asyncio.wait_for(hook.wait(), 30) == 0
    assert state.reads
    assert set(state.reads) == {1}


async def test_a_gone_engine_ends_the_hook_at_once() -> None:
    hook = await run_hook(0.1, 600, 9)  # nothing listens on port 9
    assert await asyncio.wait_for(hook.wait(), 30) == 0


async def test_zero_drain_timeout_skips_the_wait(engine: tuple[Engine, int]) -> None:
    state, port = engine
    state.busy = 5
    hook = await run_hook(600, 0, port)
    assert await asyncio.wait_for(hook.wait(), 30) == 0
    assert state.reads == []
