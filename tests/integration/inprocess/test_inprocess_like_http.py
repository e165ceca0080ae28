"""An in-process instance answers a request the way an HTTP vLLM (here the simulator, whose
answers are checked against vLLM) in the same pool would: same status, type, param, message."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fake_engine import FakeEngine

from control_plane import (
    ClientError,
    ControlPlaneManager,
    ExecutionInstance,
    UnifiedInferenceClient,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))
from router_procs import Proc, start_sims

MAX_LEN = 512


@pytest.fixture(scope="module")
def sim() -> Iterator[Proc]:
    (proc,) = start_sims(1, "tiny", "--max-model-len", str(MAX_LEN))
    yield proc
    proc.stop()


def http_instance(proc: Proc) -> ExecutionInstance:
    parts = urlsplit(proc.url)
    return ExecutionInstance(instance_id="http-0", host=parts.hostname, port=parts.port,
                             model_name="tiny")  # type: ignore[arg-type]  # fmt: skip


def local_instance() -> ExecutionInstance:
    return ExecutionInstance(
        instance_id="local-0", model_name="tiny", executor="inprocess", engine=FakeEngine(),
        sampling_params_factory=dict, engine_args={"max_model_len": MAX_LEN},
    )  # fmt: skip


async def error_of(instance: ExecutionInstance, path_kind: str, **body: object) -> ClientError:
    manager = ControlPlaneManager(scheduling_policy="fifo")
    manager.register_instance(instance)
    await manager.start()
    try:
        client = UnifiedInferenceClient.create(manager=manager, model="tiny", retries=0)
        call = (
            client.chat([{"role": "user", "content": "hi"}], **body)
            if path_kind == "chat"
            else client.complete("hi", **body)
        )
        with pytest.raises(ClientError) as info:
            await call
        return info.value
    finally:
        await manager.stop()


@pytest.mark.parametrize(
    ("kind", "body"),
    [("complete", {"max_tokens": 100_000}), ("chat", {"max_tokens": 100_000}),
     ("chat", {"max_completion_tokens": 600})],
)  # fmt: skip
async def test_too_many_output_tokens_is_the_same_400(
    sim: Proc, kind: str, body: dict[str, object]
) -> None:
    http = await error_of(http_instance(sim), kind, **body)
    local = await error_of(local_instance(), kind, **body)
    assert (local.status, local.type, local.param) == (http.status, http.type, http.param)
    assert local.message == http.message
    assert http.status == 400
    assert "cannot be greater than max_model_len=512" in http.message
