"""The in-process executor behind the same scheduling and routing as HTTP instances, driven
through a fake engine with vLLM's async interface (no vLLM needed)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from fake_engine import FakeEngine

from control_plane import ControlPlaneManager, ExecutionInstance, RequestMetadata, RequestStatus
from sagellm_core.tokens import estimate_tokens
from sagellm_router.downstream import Collector
from sagellm_router.inprocess import VllmNotInstalled

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))
from router_procs import start_sims


def local(name: str, engine: FakeEngine, model: str = "tiny") -> ExecutionInstance:
    return ExecutionInstance(
        instance_id=name, host="", port=0, model_name=model, executor="inprocess",
        engine=engine, sampling_params_factory=dict, max_concurrent_requests=8,
    )  # fmt: skip


@pytest.fixture
async def manager() -> AsyncIterator[ControlPlaneManager]:
    m = ControlPlaneManager(scheduling_policy="fifo", routing_strategy="round_robin")
    yield m
    await m.stop()


async def test_process_request_runs_on_the_engine(manager: ControlPlaneManager) -> None:
    engine = FakeEngine(natural=3)
    manager.register_instance(local("local-0", engine))
    await manager.start()
    result = await manager.process_request("a b c", {"max_tokens": 8, "temperature": 0.5})
    assert result["text"] == "word0 word1 word2 "
    assert result["finish_reason"] == "stop"
    assert result["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    assert result["instance"] == "local-0"
    assert engine.params[0] == {"max_tokens": 8, "temperature": 0.5}
    assert manager.get_metrics().completed_requests == 1
    await manager.stop()
    assert engine.shut_down is False  # the caller's engine: the caller stops it


async def test_mixed_pool_shares_routing_with_http_instances(
    manager: ControlPlaneManager,
) -> None:
    sims = start_sims(1, "tiny")
    try:
        port = int(sims[0].url.rsplit(":", 1)[1])
        manager.register_instance(local("a-local", FakeEngine()))
        manager.register_instance(
            ExecutionInstance(instance_id="b-http", host="127.0.0.1", port=port, model_name="tiny")
        )
        await manager.start()
        served = [
            (await manager.process_request(f"q{i}", {"max_tokens": 2}))["instance"]
            for i in range(4)
        ]
        assert served == ["a-local", "b-http", "a-local", "b-http"]
    finally:
        for p in sims:
            p.stop()


async def test_cancel_aborts_the_engine_request(manager: ControlPlaneManager) -> None:
    engine = FakeEngine(gate=asyncio.Event())
    manager.register_instance(local("local-0", engine))
    await manager.start()
    await manager.submit_request(RequestMetadata(request_id="r1", prompt="x", max_tokens=4))
    for _ in range(200):
        if engine.seen:
            break
        await asyncio.sleep(0.01)
    assert await manager.get_request_status("r1") is RequestStatus.RUNNING
    assert await manager.cancel_request("r1")
    assert engine.aborted == engine.seen
    assert manager._engines.local("inprocess://local-0").counters.aborted == 1


async def test_streaming_chat_through_execute(manager: ControlPlaneManager) -> None:
    manager.register_instance(local("local-0", FakeEngine(natural=2)))
    await manager.start()
    out = Collector()
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    ex = await manager.execute("/v1/chat/completions", body, out)
    assert ex.status == 200
    assert out.headers["X-Sagellm-Instance"] == "local-0"
    events = [e for e in bytes(out.body).split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    chunks = [orjson.loads(e[6:]) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "word0 word1 "
    assert chunks[-1]["usage"]["completion_tokens"] == 2


async def test_engine_failure_is_retried_on_another_instance(
    manager: ControlPlaneManager,
) -> None:
    broken, healthy = FakeEngine(fail=True), FakeEngine()
    manager.register_instance(local("a-broken", broken))
    manager.register_instance(local("b-healthy", healthy))
    await manager.start()
    result = await manager.process_request("x", {"max_tokens": 2})
    assert result["instance"] == "b-healthy"
    assert broken.seen
    assert 'reason="engine_error"' in _metrics(manager)


async def test_without_vllm_a_clear_error_says_what_to_install() -> None:
    manager = ControlPlaneManager()
    manager.register_instance(
        ExecutionInstance(
            instance_id="v",
            host="",
            port=0,
            model_name="m",
            executor="inprocess",
            model_path="/models/tiny",
        )
    )
    with pytest.raises(VllmNotInstalled, match=r"pip install 'sagellm-control-plane\[vllm\]'"):
        await manager.start()


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [({"executor": "grpc"}, "executor 'grpc'"), ({"executor": "inprocess"}, "needs model_path")],
)
def test_bad_instance_definitions(fields: dict[str, str], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        ExecutionInstance(instance_id="i", host="h", port=1, model_name="m", **fields)  # type: ignore[arg-type]


def _metrics(manager: ControlPlaneManager) -> str:
    from prometheus_client import generate_latest

    return generate_latest(manager.state.metrics.registry).decode()


class CharTokenizer:
    """One token per character (vLLM's tokenizer shape: ``encode``)."""

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return [ord(c) for c in text]


@dataclass
class TokenizingEngine(FakeEngine):
    def get_tokenizer(self) -> CharTokenizer:
        return CharTokenizer()


async def test_an_inprocess_engines_tokenizer_counts_its_models_prompts(
    manager: ControlPlaneManager,
) -> None:
    state = manager.state
    prompt = "count me with the engine's tokenizer"
    manager.register_instance(local("local-0", FakeEngine()))  # no tokenizer: the estimate
    await manager.start()
    assert state.token_counter("tiny")(prompt) == estimate_tokens(prompt)
    manager.register_instance(local("local-1", TokenizingEngine()))
    assert state.token_counter("tiny")(prompt) == len(prompt)
    assert (await manager.process_request(prompt, {"max_tokens": 2}))["text"]
    manager.unregister_instance("local-1")
    assert state.token_counter("tiny")(prompt) == estimate_tokens(prompt)
