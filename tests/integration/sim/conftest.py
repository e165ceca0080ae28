"""Fixtures: simulators served over real HTTP on 127.0.0.1 (in-loop or as subprocesses)."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sim_process import Launch, kill_group, start_engine

from sagellm_sim.config import SimConfig
from sagellm_sim.server import build_app

StartSim = Callable[..., Awaitable[str]]


@pytest.fixture
async def start_sim() -> AsyncIterator[StartSim]:
    """``await start_sim(**SimConfig fields)`` -> base URL of a running in-loop simulator."""
    servers: list[TestServer] = []

    async def start(on_crash: Callable[[], None] | None = None, **fields: Any) -> str:
        fields.setdefault("model", "sim-model")
        fields.setdefault("sim_time_scale", 0.02)
        fields.setdefault("max_model_len", 4096)
        app = build_app(SimConfig(**fields), on_crash=on_crash or (lambda: None))
        server = TestServer(app, host="127.0.0.1", port=0)
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(params=["sim", pytest.param("vllm", marks=pytest.mark.vllm)])
def launch(request: pytest.FixtureRequest) -> Iterator[Launch]:
    """A server process the test owns (it may signal it): `sagellm sim`, or real vLLM (-m vllm)."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(
        *extra: str, max_model_len: int = 8192, env: dict[str, str] | None = None
    ) -> tuple[subprocess.Popen[bytes], int]:
        proc, port = start_engine(request.param, extra, max_model_len, env or {})
        procs.append(proc)
        return proc, port

    try:
        yield start
    finally:
        for proc in procs:
            kill_group(proc)
