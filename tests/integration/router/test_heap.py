"""The router under load leaves nothing to Python's cycle collector: a full collection walks
every tracked object and stalls the event loop, so the startup heap is frozen and served
requests are freed by reference counting alone."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from router_fakes import pool, router_yaml
from test_fastpath import Wire, post

from sagellm_router.exchange import Exchange


@pytest.fixture
def saved_garbage() -> Iterator[list[Any]]:
    """Unreachable objects are kept in ``gc.garbage`` (not freed) while the test runs."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


@pytest.mark.parametrize("routing", ["round_robin", "prefix_aware"])
async def test_served_requests_leave_no_cyclic_garbage(
    engines: Any, start_router: Any, saved_garbage: list[Any], routing: str
) -> None:
    (engine,) = await engines(1)
    base = await start_router(router_yaml([pool("p", "m", [engine.url], routing)]))
    wire = await Wire.open(base)
    stream = json.dumps({"model": "m", "prompt": "hi", "max_tokens": 2, "stream": True})
    for body in [None] * 5 + [stream.encode()] * 3:
        await wire.send(post() if body is None else post(body))
        status, _, _ = await wire.response()
        assert status == 200
    wire.writer.close()
    gc.collect()
    cyclic = [o for o in saved_garbage if isinstance(o, Exchange)]
    assert cyclic == [], f"{len(cyclic)} of 8 requests were left to the cycle collector"


def test_router_process_freezes_its_startup_heap(tmp_path: Path) -> None:
    config = tmp_path / "router.json"
    doc = router_yaml([pool("p", "m", ["http://127.0.0.1:9"])])
    config.write_text(json.dumps({"server": {"host": "127.0.0.1", "port": 0}, **doc}))
    code = (
        "import asyncio, gc, os, sys\n"
        "from sagellm_router.config import load_settings\n"
        "from sagellm_router.server import serve\n"
        "async def main():\n"
        "    started = asyncio.Event()\n"
        "    asyncio.create_task(serve(load_settings(sys.argv[1]), sys.argv[1], started=started))\n"
        "    await started.wait()\n"
        "    print(gc.get_freeze_count(), flush=True)\n"
        "    os._exit(0)\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(config)], capture_output=True, timeout=60, check=True
    )
    frozen = int(out.stdout.split()[-1])
    assert frozen > 1000, f"only {frozen} objects frozen once the router serves"
