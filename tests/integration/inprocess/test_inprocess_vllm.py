"""Opt-in (marker ``vllm``): the seed's "direct integration" example against a real vLLM.

``ControlPlaneManager`` starts vLLM's ``AsyncLLM`` in this process for the tiny model
(``TINY_MODEL_DIR``) and serves requests through the usual scheduling and routing: a whole
completion, a streamed chat, a cancelled request (aborted in the engine), metrics. Run with
``bash tools/vllm/run-inprocess.sh`` (uses .venv-vllm).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from control_plane import (
    ControlPlaneManager,
    ExecutionInstance,
    RequestMetadata,
    RequestPriority,
    RequestStatus,
)
from sagellm_router.downstream import Collector

pytestmark = pytest.mark.vllm
MODEL_DIR = Path(os.environ.get("TINY_MODEL_DIR", ".tools/tiny-llama")).resolve()


@pytest.fixture
async def manager() -> AsyncIterator[ControlPlaneManager]:
    if not MODEL_DIR.is_dir():
        pytest.skip(f"no tiny model at {MODEL_DIR}; run tools/vllm/setup.sh")
    m = ControlPlaneManager(scheduling_policy="priority", routing_strategy="load_balanced")
    m.register_instance(ExecutionInstance(
        instance_id="vllm-local", host="", port=0, model_name="tiny", executor="inprocess",
        model_path=str(MODEL_DIR),
        engine_args={"max_model_len": 512, "dtype": "bfloat16", "served_model_name": ["tiny"]},
        max_concurrent_requests=8,
    ))  # fmt: skip
    await m.start()
    yield m
    await m.stop()


async def test_direct_integration_example(manager: ControlPlaneManager) -> None:
    result = await manager.process_request(
        "The capital of France is", {"max_tokens": 8, "temperature": 0.0},
        priority=RequestPriority.HIGH,
    )  # fmt: skip
    assert result["instance"] == "vllm-local"
    assert result["usage"]["completion_tokens"] >= 1
    assert result["finish_reason"] in ("length", "stop")
    assert isinstance(result["text"], str)

    out = Collector()
    body = {
        "model": "tiny", "prompt": "one two three", "max_tokens": 6, "stream": True,
        "temperature": 0.0, "ignore_eos": True, "stream_options": {"include_usage": True},
    }  # fmt: skip
    ex = await manager.execute("/v1/completions", body, out)
    assert ex.status == 200
    events = [e for e in bytes(out.body).split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    usage = orjson.loads(events[-2][6:])["usage"]
    assert usage["completion_tokens"] == 6

    await manager.submit_request(
        RequestMetadata(request_id="long", prompt="count:", max_tokens=400, temperature=0.0)
    )
    local = manager._engines.local("inprocess://vllm-local")
    for _ in range(600):
        if local.counters.running:
            break
        await asyncio.sleep(0.05)
    assert await manager.cancel_request("long")
    assert await manager.get_request_status("long") is RequestStatus.CANCELLED
    assert local.counters.aborted == 1
    metrics = manager.get_metrics()
    assert metrics.completed_requests == 1
    assert metrics.cancelled_requests == 1
