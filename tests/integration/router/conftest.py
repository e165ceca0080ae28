"""Fixtures: fake engines and an in-loop router on 127.0.0.1 (real HTTP both ways; the router
serves as in production: fast path for plain inference requests, aiohttp for the rest)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from router_fakes import FakeEngine

from sagellm_router.config import parse_settings
from sagellm_router.server import RouterServer, make_app

ROOT = str(Path(__file__).resolve().parents[3])
if ROOT not in sys.path:  # the shared tests.kubeemu emulator
    sys.path.insert(0, ROOT)

RouterFactory = Callable[..., Awaitable[str]]


@pytest.fixture
async def engines() -> AsyncIterator[Callable[..., Awaitable[list[FakeEngine]]]]:
    started: list[FakeEngine] = []

    async def make(n: int, **kwargs: Any) -> list[FakeEngine]:
        new = [await FakeEngine(name=f"e{len(started) + i}", **kwargs).start() for i in range(n)]
        started.extend(new)
        return new

    yield make
    for engine in started:
        assert engine.server is not None
        await engine.server.close()


@pytest.fixture
async def start_router(tmp_path: Any) -> AsyncIterator[RouterFactory]:
    import yaml

    servers: list[RouterServer] = []

    async def start(doc: dict[str, Any], seed: int = 7) -> str:
        path = tmp_path / "router.yaml"
        path.write_text(yaml.safe_dump(doc))
        settings = parse_settings(path.read_text())
        server = RouterServer(make_app(settings, path, seed=seed), shutdown_timeout_s=5.0)
        servers.append(server)
        base = f"http://127.0.0.1:{await server.start('127.0.0.1', 0)}"
        async with ClientSession() as s:  # wait until discovery has published the pools
            for _ in range(200):
                async with s.get(base + "/ready") as r:
                    if r.status == 200 or not doc["discovery"]["pools"]:
                        break
                await asyncio.sleep(0.01)
        return base

    yield start
    for server in servers:
        await server.stop()
