"""API, SSE and metrics conformance: the same checks against the simulator and a real vLLM.

The simulator runs as a real subprocess (`sagellm sim ...`). To run the checks against vLLM,
start one (see docs/simulator.md) and run
``SAGELLM_VLLM_URL=http://127.0.0.1:8000 pytest -m vllm tests/integration/sim/test_conformance.py``.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sim_process import start, stop, wait_healthy

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module", params=["sim", pytest.param("vllm", marks=pytest.mark.vllm)])
def base_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "vllm":
        url = os.environ.get("SAGELLM_VLLM_URL")
        if not url:
            pytest.skip("set SAGELLM_VLLM_URL to the base URL of a running vLLM server")
        yield url.rstrip("/")
        return
    proc, base = start(
        "conformance-model", "--max-model-len", "512", "--sim-profile", "tiny",
        "--sim-time-scale", "0.05", "--dtype", "bfloat16", "--trust-remote-code",
        "--swap-space", "4",  # unknown vLLM flags are accepted
    )  # fmt: skip
    try:
        wait_healthy(proc, base)
        yield base
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="EMPTY", max_retries=0)


@pytest.fixture(scope="module")
def model(client: openai.OpenAI) -> str:
    return client.models.list().data[0].id


def raw(
    base: str, path: str, body: Any = None, method: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, dict[str, str]]:  # fmt: skip
    data = None
    if body is not None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    req = urllib.request.Request(f"{base}{path}", data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def test_models_list(client: openai.OpenAI, model: str) -> None:
    entry = client.models.list().data[0]
    assert entry.id == model
    assert entry.owned_by == "vllm"
    assert entry.object == "model"
    assert isinstance((entry.model_extra or {})["max_model_len"], int)


def test_completion(client: openai.OpenAI, model: str) -> None:
    resp = client.completions.create(model=model, prompt="Hello, my name is", max_tokens=5)
    choice = resp.choices[0]
    assert isinstance(choice.text, str)
    assert choice.finish_reason in ("length", "stop")
    assert resp.usage is not None
    assert resp.usage.prompt_tokens > 0
    assert 1 <= resp.usage.completion_tokens <= 5
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert (resp.model_extra or {}).get("kv_transfer_params") is None
    assert resp.object == "text_completion"


def test_chat_completion(client: openai.OpenAI, model: str) -> None:
    resp = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hi"}], max_tokens=5
    )
    assert resp.object == "chat.completion"
    assert resp.choices[0].message.role == "assistant"
    assert isinstance(resp.choices[0].message.content, str)
    assert resp.choices[0].finish_reason in ("length", "stop")


def test_chat_stream_with_usage(client: openai.OpenAI, model: str) -> None:
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Count"}], max_tokens=6, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in ("length", "stop")
    assert all(f is None for f in finishes[:-1])
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert 1 <= chunks[-1].usage.completion_tokens <= 6
    assert len({c.id for c in chunks}) == 1


def test_completion_stream(client: openai.OpenAI, model: str) -> None:
    chunks = list(client.completions.create(model=model, prompt="Once upon", max_tokens=4,
                                            stream=True))  # fmt: skip
    assert chunks[-1].choices[0].finish_reason in ("length", "stop")
    assert all(c.object == "text_completion" for c in chunks)


def test_sse_wire_format_ends_with_done(base_url: str, model: str) -> None:
    body = {"model": model, "prompt": "a b c", "max_tokens": 3, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    status, data, headers = raw(base_url, "/v1/completions", body)
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    events = data.decode().split("\n\n")
    assert events[-1] == ""
    assert events[-2] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events[:-1])
    usage = json.loads(events[-3][6:])
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] >= 1


def test_request_id_header(base_url: str, model: str) -> None:
    body = {"model": model, "prompt": "x", "max_tokens": 1}
    status, data, _ = raw(base_url, "/v1/completions", body, headers={"X-Request-Id": "conf-1"})
    assert status == 200
    assert json.loads(data)["id"] == "cmpl-conf-1"


@pytest.mark.parametrize(
    ("body", "status", "err_type"),
    [
        ('{"prompt": ', 400, "BadRequestError"),
        ({"prompt": "x", "max_tokens": 100000}, 400, "BadRequestError"),
        ({"model": "no-such-model", "prompt": "x"}, 404, "NotFoundError"),
    ],
)
def test_error_shape(base_url: str, model: str, body: Any, status: int, err_type: str) -> None:
    if isinstance(body, dict):
        body = {"model": model, **body}
    got, data, _ = raw(base_url, "/v1/completions", body)
    assert got == status
    error = json.loads(data)["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert error["type"] == err_type
    assert error["code"] == status or isinstance(error["code"], str)  # vLLM PR #37011


def test_openai_client_raises_typed_errors(client: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=model, prompt="x", max_tokens=100000)
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="no-such-model", prompt="x", max_tokens=1)


def test_health_ping_version(base_url: str) -> None:
    assert raw(base_url, "/health")[:2] == (200, b"")
    assert raw(base_url, "/ping")[0] == 200
    assert raw(base_url, "/ping", "", method="POST")[0] == 200
    status, data, _ = raw(base_url, "/version")
    assert status == 200
    assert isinstance(json.loads(data)["version"], str)


def test_tokenize(base_url: str, model: str) -> None:
    status, data, _ = raw(base_url, "/tokenize", {"model": model, "prompt": "Hello world"})
    assert status == 200
    out = json.loads(data)
    assert out["count"] == len(out["tokens"]) > 0
    assert isinstance(out["max_model_len"], int)


EXPECTED_TYPES = {
    "vllm:num_requests_running": "gauge",
    "vllm:num_requests_waiting": "gauge",
    "vllm:kv_cache_usage_perc": "gauge",
    "vllm:prefix_cache_queries": "counter",
    "vllm:prefix_cache_hits": "counter",
    "vllm:prompt_tokens": "counter",
    "vllm:generation_tokens": "counter",
    "vllm:request_success": "counter",
    "vllm:time_to_first_token_seconds": "histogram",
    "vllm:inter_token_latency_seconds": "histogram",
    "vllm:e2e_request_latency_seconds": "histogram",
    "vllm:request_queue_time_seconds": "histogram",
    "vllm:cache_config_info": "gauge",
}


def test_metrics_names_types_labels(base_url: str, client: openai.OpenAI, model: str) -> None:
    client.completions.create(model=model, prompt="warm up", max_tokens=2)
    status, data, headers = raw(base_url, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(data.decode())}
    for name, kind in EXPECTED_TYPES.items():
        assert families[name].type == kind, name
        labels = set(families[name].samples[0].labels)
        assert "engine" in labels, name
        if name != "vllm:cache_config_info":
            assert "model_name" in labels, name
    info = families["vllm:cache_config_info"].samples[0]
    assert {"block_size", "num_gpu_blocks", "enable_prefix_caching"} <= set(info.labels)
    success = families["vllm:request_success"].samples
    assert {s.labels.get("finished_reason") for s in success} >= {"length"}
