"""The example programs run as a user runs them: ``python examples/<name>.py``.

``example_http_client.py`` talks to ``make run``'s fleet (``sagellm up``: two general engines
for ``tiny``, a prefill/decode pair for ``tiny-pd``, the router on a port of its own here);
``demo_control_plane.py`` starts its own simulated engines.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sagellm_router.up import start_fleet, stop_fleet
from tests.ports import free_port

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def run(name: str, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True,
        timeout=240, env={**os.environ, **(env or {})},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def make_run_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    children = start_fleet(tmp_path_factory.mktemp("up"), port, "prefix_aware", (2, 1, 1), 0.05)
    try:
        yield children[-1].url
    finally:
        stop_fleet(children)


def test_http_client_example_against_the_local_fleet(make_run_fleet: str) -> None:
    out = run("example_http_client.py", "--requests", "8",
              env={"SAGELLM_BASE_URL": make_run_fleet})  # fmt: skip
    assert "models: tiny, tiny-pd" in out
    assert "chat: " in out
    assert "stream: " in out
    assert "PD (tiny-pd): prefill on prefill-0, decode on decode-0" in out
    assert "bad request answered 400" in out
    assert "async: 8 requests in" in out


def test_demo_control_plane_starts_its_own_engines() -> None:
    out = run("demo_control_plane.py")
    assert "1. registered 4 instances; status: 4 available" in out
    assert "2. 10/10 requests completed" in out
    assert "3. TP-hinted request served by vllm-tp4" in out
    assert "4. long prompt: prefill on prefill-1, decode on decode-1" in out
    assert "6. policy priority, routing round_robin" in out
    assert "failed 0" in out
    assert out.rstrip().endswith("stopped")
