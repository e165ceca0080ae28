"""The seed quick-start flow of ``ControlPlaneManager`` against real simulator processes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from router_procs import Proc, start_sims

from control_plane import (
    ControlPlaneManager,
    DecodingConfig,
    ExecutionInstance,
    ExecutionInstanceType,
    PDSeparationConfig,
    RequestMetadata,
    RequestPriority,
    RequestStatus,
)

PD = json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_both"})


@pytest.fixture(scope="module")
def sims() -> Iterator[list[Proc]]:
    procs = start_sims(2, "tiny") + start_sims(2, "tiny-pd", "--kv-transfer-config", PD)
    yield procs
    for p in procs:
        p.stop()


def instance(name: str, proc: Proc, model: str, kind: ExecutionInstanceType) -> ExecutionInstance:
    parts = urlsplit(proc.url)
    assert parts.hostname is not None
    assert parts.port is not None
    return ExecutionInstance(
        instance_id=name, host=parts.hostname, port=parts.port, model_name=model,
        tensor_parallel_size=1, gpu_count=1, instance_type=kind,
        decoding_config=DecodingConfig(max_parallel_requests=8)
        if kind is ExecutionInstanceType.DECODING else None,
    )  # fmt: skip


async def ask(manager: ControlPlaneManager, prompt: str, tokens: int, model: str) -> dict:  # type: ignore[type-arg]
    return await manager.process_request(prompt, {"max_tokens": tokens}, model_name=model)


async def test_quickstart_flow(sims: list[Proc]) -> None:
    general = ExecutionInstanceType.GENERAL
    manager = ControlPlaneManager(
        scheduling_policy="adaptive",
        routing_strategy="load_balanced",
        enable_pd_separation=True,
        pd_config=PDSeparationConfig(prefilling_threshold_input_tokens=100),
    )
    manager.register_instance(instance("vllm-1", sims[0], "tiny", general))
    manager.register_instance(instance("vllm-2", sims[1], "tiny", general))
    manager.register_instance(
        instance("prefill-1", sims[2], "tiny-pd", ExecutionInstanceType.PREFILLING)
    )
    manager.register_instance(
        instance("decode-1", sims[3], "tiny-pd", ExecutionInstanceType.DECODING)
    )
    assert {i.instance_id for i in manager.get_instances()} == {
        "vllm-1", "vllm-2", "prefill-1", "decode-1",
    }  # fmt: skip
    await manager.start()
    try:
        request = RequestMetadata(
            request_id="req-001", prompt="Hello there", max_tokens=8, model_name="tiny",
            priority=RequestPriority.HIGH, slo_deadline_ms=60_000,
        )  # fmt: skip
        assert await manager.submit_request(request) == "req-001"
        assert await manager.get_request_status("req-001") in set(RequestStatus)
        result = await manager.process_request(
            "Tell me a story", {"max_tokens": 5}, model_name="tiny"
        )
        assert result["text"]
        assert result["usage"]["completion_tokens"] <= 5
        assert result["instance"] in {"vllm-1", "vllm-2"}
        pd = await manager.process_request(
            "long context " * 200, {"max_tokens": 3}, model_name="tiny-pd"
        )
        assert pd["prefill_instance"] == "prefill-1"
        assert pd["instance"] == "decode-1"
        short = await ask(manager, "hi", 3, "tiny-pd")
        assert short["prefill_instance"] is None
        await manager.get_request_result("req-001")
        status = await manager.get_request_status("req-001")
        assert status in (RequestStatus.COMPLETED, RequestStatus.RUNNING, RequestStatus.QUEUED)

        metrics = manager.get_metrics()
        assert metrics.total_requests == 4
        assert metrics.completed_requests + metrics.active_requests + metrics.queued_requests == 4
        assert metrics.failed_requests == 0
        assert metrics.p95_latency_ms >= metrics.p50_latency_ms > 0
        assert metrics.tokens_per_second > 0
        assert metrics.slo_compliance_rate == 1.0

        manager.update_policy("priority")
        assert manager.get_status()["scheduling_policy"] == "priority"
        assert manager.get_status()["pools"]["tiny"]["policy"] == "priority"
        with pytest.raises(ValueError, match="unknown scheduling policy"):
            manager.update_policy("fastest")
        manager.routing_strategy = "round_robin"
        served = {(await ask(manager, "x", 2, "tiny"))["instance"] for _ in range(4)}
        assert served == {"vllm-1", "vllm-2"}
        per = manager.get_instance_metrics("vllm-1")
        assert per is not None
        assert per.total_requests_processed >= 2
        with pytest.raises(KeyError, match="no instance 'nope'"):
            manager.get_instance_metrics("nope")
        assert manager.get_status()["running"] is True
    finally:
        await manager.stop()
    assert manager.get_status()["running"] is False


async def test_cancel_a_queued_request(sims: list[Proc]) -> None:
    manager = ControlPlaneManager(scheduling_policy="fifo")
    slow = instance("vllm-1", sims[0], "tiny", ExecutionInstanceType.GENERAL)
    slow.max_concurrent_requests = 1
    manager.register_instance(slow)
    await manager.start()
    try:
        await manager.submit_request(RequestMetadata("a", prompt="x", max_tokens=400))
        await manager.submit_request(RequestMetadata("b", prompt="y", max_tokens=4))
        assert await manager.cancel_request("b") is True
        assert await manager.get_request_status("b") is RequestStatus.CANCELLED
        assert await manager.cancel_request("b") is False
        assert manager.get_status()["pools"]["tiny"]["queued"] == 0
    finally:
        await manager.stop()
