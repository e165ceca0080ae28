"""In-loop simulator engines and routers on 127.0.0.1 (real HTTP both ways)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestServer

from sagellm_router.config import parse_settings
from sagellm_router.server import RouterServer, make_app
from sagellm_sim.config import SimConfig
from sagellm_sim.server import build_app

Starter = Callable[..., Awaitable[str]]


@pytest.fixture
async def servers() -> AsyncIterator[list[TestServer]]:
    started: list[TestServer] = []
    yield started
    for server in reversed(started):
        await server.close()


@pytest.fixture
def sim(servers: list[TestServer]) -> Starter:
    """``await sim(model, runner="pooling", ...)`` -> base URL of a simulator (tiny profile)."""

    async def start(model: str, **fields: Any) -> str:
        config = SimConfig(model=model, sim_profile="tiny", sim_time_scale=0.01, **fields)
        server = TestServer(build_app(config), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    return start


@pytest.fixture
async def router(tmp_path: Any) -> AsyncIterator[Starter]:
    """``await router(config_dict)`` -> base URL of a router serving that config."""
    routers: list[RouterServer] = []

    async def start(doc: dict[str, Any]) -> str:
        path = tmp_path / "router.yaml"
        path.write_text(yaml.safe_dump(doc))
        server = RouterServer(make_app(parse_settings(path.read_text()), path, seed=3), 5.0)
        routers.append(server)
        return f"http://127.0.0.1:{await server.start('127.0.0.1', 0)}"

    yield start
    for server in routers:
        await server.stop()
