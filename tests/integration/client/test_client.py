"""UnifiedInferenceClient against a real router process and against an embedded manager (the
same tests, parametrised), both in front of simulator processes."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))
from router_procs import Proc, free_port, spawn_router, start_sims, wait_http

from control_plane import (
    ClientError,
    ControlPlaneManager,
    ExecutionInstance,
    UnifiedInferenceClient,
)


@pytest.fixture(scope="module")
def engines() -> Iterator[dict[str, list[Proc]]]:
    gen = start_sims(2, "tiny")
    emb = start_sims(1, "emb", "--runner", "pooling", "--sim-embedding-dim", "16")
    yield {"tiny": gen, "emb": emb}
    for p in gen + emb:
        p.stop()


@pytest.fixture(scope="module")
def router_url(engines: dict[str, list[Proc]], tmp_path_factory: Any) -> Iterator[str]:
    port = free_port()
    pools = [
        {"name": model, "model": model, "task": "embed" if model == "emb" else "generate",
         "routing": "round_robin",
         "endpoints": [{"url": p.url, "instance": f"{model}-{i}"} for i, p in enumerate(procs)]}
        for model, procs in engines.items()
    ]  # fmt: skip
    doc = {"server": {"host": "127.0.0.1", "port": port},
           "discovery": {"type": "static", "pools": pools}}  # fmt: skip
    config = tmp_path_factory.mktemp("router") / "router.yaml"
    config.write_text(yaml.safe_dump(doc))
    proc = spawn_router(config)
    router = Proc(proc, f"http://127.0.0.1:{port}")
    try:
        wait_http(router.url + "/ready", proc)
        yield router.url
    finally:
        router.stop()


@pytest.fixture(params=["router", "manager"])
async def client(
    request: pytest.FixtureRequest, engines: dict[str, list[Proc]]
) -> AsyncIterator[UnifiedInferenceClient]:
    if request.param == "router":
        url = request.getfixturevalue("router_url")
        async with UnifiedInferenceClient.create(base_url=url + "/v1", model="tiny") as c:
            yield c
        return
    manager = ControlPlaneManager(scheduling_policy="fifo", routing_strategy="round_robin")
    for model, procs in engines.items():
        for i, p in enumerate(procs):
            manager.register_instance(ExecutionInstance(
                instance_id=f"{model}-{i}", host="127.0.0.1", port=int(p.url.rsplit(":", 1)[1]),
                model_name=model, task="embed" if model == "emb" else "generate",
            ))  # fmt: skip
    await manager.start()
    try:
        async with UnifiedInferenceClient.create(manager=manager, model="tiny") as c:
            yield c
    finally:
        await manager.stop()


async def test_complete_and_chat_return_typed_results(client: UnifiedInferenceClient) -> None:
    done = await client.complete("Hello there", max_tokens=5)
    assert done.text
    assert done.finish_reason in ("length", "stop")
    assert done.usage is not None
    assert done.usage.completion_tokens <= 5
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens
    assert done.instance in ("tiny-0", "tiny-1")
    assert done.request_id
    chat = await client.chat([{"role": "user", "content": "hi"}], max_tokens=4, user="u1")
    assert chat.text
    assert chat.instance in ("tiny-0", "tiny-1")
    assert chat.raw["object"] == "chat.completion"


async def test_embed(client: UnifiedInferenceClient) -> None:
    result = await client.embed(["alpha", "beta", "gamma"], model="emb")
    assert len(result.vectors) == 3
    assert all(len(v) == 16 for v in result.vectors)
    assert result.instance == "emb-0"
    assert result.usage is not None
    assert result.usage.prompt_tokens > 0
    single = await client.embed("alpha", model="emb", dimensions=4)
    assert len(single.vectors[0]) == 4


@pytest.mark.parametrize("kind", ["complete", "chat"])
async def test_streams_yield_typed_chunks(client: UnifiedInferenceClient, kind: str) -> None:
    options = {"max_tokens": 6, "stream_options": {"include_usage": True}, "ignore_eos": True}
    if kind == "complete":
        stream = client.stream_complete("count with me", **options)
    else:
        stream = client.stream_chat([{"role": "user", "content": "count"}], **options)
    chunks = [c async for c in stream]
    assert "".join(c.text for c in chunks).strip()
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["length"]
    usage = [c.usage for c in chunks if c.usage is not None]
    assert usage[-1].completion_tokens == 6
    assert {c.instance for c in chunks} <= {"tiny-0", "tiny-1"}


@pytest.mark.parametrize(
    ("call", "status", "fragment"),
    [
        ("unknown_model", 404, "does not exist"),
        ("embed_generate_model", 400, "is a generative model"),
        ("bad_max_tokens", 400, "max_tokens"),  # the engine's own 400, as vLLM answers it
    ],
)
async def test_errors_are_typed(
    client: UnifiedInferenceClient, call: str, status: int, fragment: str
) -> None:
    calls = {
        "unknown_model": lambda: client.complete("x", model="nope"),
        "embed_generate_model": lambda: client.embed("x", model="tiny"),
        "bad_max_tokens": lambda: client.complete("x", max_tokens=0),
    }
    with pytest.raises(ClientError) as err:
        await calls[call]()
    assert err.value.status == status
    assert fragment in err.value.message
