"""Third-party plugins picked by name in pool configs steer real traffic (simulator engines).

The example package (tests/plugin_pkg) is made discoverable through a ``.dist-info`` on a
temporary sys.path entry; ``last_by_reference`` comes from the config's ``plugins:`` list.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestServer
from router_fakes import router_yaml

from sagellm_sim.config import SimConfig
from sagellm_sim.server import build_app

PLUGIN_PKG = Path(__file__).resolve().parents[2] / "plugin_pkg"
sys.path.insert(0, str(PLUGIN_PKG))
from dist_info import install  # noqa: E402

REF = "sagellm_test_plugins.referenced:last_by_reference"
NAMES = ("strategy", "by-ref", "policy", "control")


@pytest.fixture
async def sims() -> AsyncIterator[list[str]]:
    servers = []
    for _ in range(3):
        config = SimConfig(
            model="tiny", served_model_names=NAMES, sim_profile="tiny", sim_time_scale=0.01
        )
        server = TestServer(build_app(config), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
    yield [str(s.make_url("")).rstrip("/") for s in servers]
    for server in servers:
        await server.close()


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    entries = install(tmp_path / "site")
    for entry in reversed(entries):
        monkeypatch.syspath_prepend(entry)
    return entries


async def _served_by(base: str, model: str, n: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    async with aiohttp.ClientSession() as s:
        for i in range(n):
            body = {"model": model, "prompt": f"request {i}", "max_tokens": 2}
            async with s.post(f"{base}/v1/completions", json=body) as r:
                assert r.status == 200, await r.text()
                seen[r.headers["X-Sagellm-Instance"]] += 1
    return seen


def _pool(name: str, urls: list[str], **extra: Any) -> dict[str, Any]:
    endpoints = [{"url": u, "instance": f"{name}-{i}"} for i, u in enumerate(urls)]
    return {"name": name, "model": name, "endpoints": endpoints, **extra}


async def test_plugins_choose_the_instances(
    sims: list[str], plugin_path: list[str], start_router: Callable[..., Awaitable[str]]
) -> None:
    doc = router_yaml(
        [
            _pool("strategy", sims, routing="last_candidate"),
            _pool("by-ref", sims, routing="last_by_reference"),
            _pool("policy", list(reversed(sims)), routing="round_robin", policy="pin_first"),
            _pool("control", sims, routing="round_robin"),
        ],
        plugins=[REF],
    )
    base = await start_router(doc)
    assert await _served_by(base, "strategy", 6) == {"strategy-2": 6}
    assert await _served_by(base, "by-ref", 4) == {"by-ref-2": 4}
    first = f"policy-{list(reversed(sims)).index(min(sims))}"  # the smallest URL
    assert await _served_by(base, "policy", 6) == {first: 6}
    assert await _served_by(base, "control", 6) == {f"control-{i}": 2 for i in range(3)}


def test_router_command_reports_a_bad_plugin(tmp_path: Path, plugin_path: list[str]) -> None:
    config = tmp_path / "router.yaml"
    config.write_text(yaml.safe_dump({"plugins": ["sagellm_test_plugins.referenced:pickless"]}))
    env = {"PYTHONPATH": ":".join(plugin_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "sagellm_router", "--config", str(config)],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode != 0
    assert "lacks pick()" in done.stderr
    assert "pickless" in done.stderr
