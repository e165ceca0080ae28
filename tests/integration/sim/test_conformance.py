"""API, SSE and metrics conformance: the same checks against the simulator, against our router
in front of a simulator, and against a real vLLM.

The simulator and the router run as real subprocesses (`sagellm sim ...`, `sagellm router`).
Through the router every check runs except ``ENGINE_ONLY`` (routes the router does not proxy:
its /metrics, /health and unknown routes are its own). To run the checks against vLLM, start
one (see docs/simulator.md) and run
``SAGELLM_VLLM_URL=http://127.0.0.1:8000 pytest -m vllm tests/integration/sim/test_conformance.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sim_process import free_port, start, stop, wait_healthy

pytestmark = pytest.mark.timeout(120)
SIM_ARGS = (
    "conformance-model", "--max-model-len", "512", "--sim-profile", "tiny",
    "--sim-time-scale", "0.05", "--dtype", "bfloat16", "--trust-remote-code",
    "--swap-space", "4",  # unknown vLLM flags are accepted
)  # fmt: skip


# Checks of engine routes the router does not proxy (it serves its own /metrics, /health, ...).
ENGINE_ONLY = frozenset({
    "test_health_ping_version", "test_tokenize", "test_metrics_names_types_labels",
    "test_unknown_route_and_method",
})  # fmt: skip
TOKENIZE_CASES = ("/tokenize",)


@pytest.fixture(autouse=True)
def _engine_only(request: pytest.FixtureRequest) -> None:
    if "base_url" not in request.fixturenames:
        return
    target = request.node.callspec.params.get("base_url")
    path = request.node.callspec.params.get("path")
    if target in ("router", "router-vllm") and (request.node.originalname in ENGINE_ONLY
                               or path in TOKENIZE_CASES):  # fmt: skip
        pytest.skip("engine-only route: the router does not proxy it")


@pytest.fixture(
    scope="module",
    params=["sim", "router", pytest.param("vllm", marks=pytest.mark.vllm),
            pytest.param("router-vllm", marks=pytest.mark.vllm)],
)  # fmt: skip
def base_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "router":
        yield from _router(tmp_path_factory)
        return
    if request.param == "router-vllm":
        url = os.environ.get("SAGELLM_VLLM_URL")
        if not url:
            pytest.skip("set SAGELLM_VLLM_URL to the base URL of a running vLLM server")
        yield from _router(tmp_path_factory, url.rstrip("/"))
        return
    if request.param == "vllm":
        url = os.environ.get("SAGELLM_VLLM_URL")
        if not url:
            pytest.skip("set SAGELLM_VLLM_URL to the base URL of a running vLLM server")
        yield url.rstrip("/")
        return
    proc, base = start(*SIM_ARGS)
    try:
        wait_healthy(proc, base)
        yield base
    finally:
        stop(proc)


def _served_model(base: str) -> str:
    with urllib.request.urlopen(f"{base}/v1/models", timeout=10) as resp:
        return str(json.loads(resp.read())["data"][0]["id"])


def _router(tmp_path_factory: pytest.TempPathFactory, vllm: str | None = None) -> Iterator[str]:
    """``sagellm router`` (static pool) in front of the same simulator as the "sim" target, or
    in front of the real vLLM at ``vllm``."""
    proc, engine = (None, vllm) if vllm else start(*SIM_ARGS)
    if proc is not None:
        wait_healthy(proc, engine)
    router_port = free_port()
    pool = {"name": "conformance", "model": _served_model(engine),
            "endpoints": [{"url": engine, "instance": "engine-0"}]}  # fmt: skip
    config = tmp_path_factory.mktemp("router") / "router.json"
    config.write_text(json.dumps({"server": {"host": "127.0.0.1", "port": router_port},
                                  "discovery": {"type": "static", "pools": [pool]}}))  # fmt: skip
    router = subprocess.Popen([sys.executable, "-m", "sagellm_router", "--config", str(config),
                               "--log-level", "warning"])  # fmt: skip
    base = f"http://127.0.0.1:{router_port}"
    try:
        wait_healthy(router, base)
        yield base
    finally:
        stop(router)
        if proc is not None:
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
    try:  # header names lower-cased: vLLM (uvicorn) sends them in lower case
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read(), {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), {k.lower(): v for k, v in exc.headers.items()}


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
    assert headers["content-type"].startswith("text/event-stream")
    events = data.decode().split("\n\n")
    assert events[-1] == ""
    assert events[-2] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events[:-1])
    usage = json.loads(events[-3][6:])
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] >= 1


def sse_events(base: str, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    status, data, _ = raw(base, path, {**body, "stream": True})
    assert status == 200
    events = [e for e in data.decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    return [json.loads(e.removeprefix("data: ")) for e in events[:-1]]


COMPLETION_KEYS = {"id", "object", "created", "model", "choices", "service_tier",
                   "system_fingerprint", "usage", "kv_transfer_params", "ec_transfer_params",
                   "metrics"}  # fmt: skip
CHAT_KEYS = COMPLETION_KEYS | {"prompt_logprobs", "prompt_token_ids", "prompt_text"}
USAGE_KEYS = {"prompt_tokens", "total_tokens", "completion_tokens", "prompt_tokens_details",
              "completion_tokens_details"}  # fmt: skip


def test_response_body_fields(base_url: str, model: str) -> None:
    body = {"model": model, "prompt": "Hello", "max_tokens": 2}
    out = json.loads(raw(base_url, "/v1/completions", body)[1])
    assert set(out) == COMPLETION_KEYS
    assert set(out["choices"][0]) == {"index", "text", "logprobs", "finish_reason", "stop_reason",
                                      "token_ids", "prompt_logprobs", "prompt_token_ids",
                                      "routed_experts"}  # fmt: skip
    assert set(out["usage"]) == USAGE_KEYS
    assert out["system_fingerprint"].startswith("vllm-")
    chat = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    out = json.loads(raw(base_url, "/v1/chat/completions", chat)[1])
    assert set(out) == CHAT_KEYS
    assert set(out["choices"][0]) == {"index", "message", "logprobs", "finish_reason",
                                      "stop_reason", "token_ids", "routed_experts"}  # fmt: skip
    assert set(out["choices"][0]["message"]) == {"role", "content", "refusal", "annotations",
                                                 "audio", "function_call", "reasoning"}  # fmt: skip


def test_chat_stream_chunk_fields(base_url: str, model: str) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3,
            "ignore_eos": True, "stream_options": {"include_usage": True}}  # fmt: skip
    chunks = sse_events(base_url, "/v1/chat/completions", body)
    head = {"id", "object", "created", "model", "choices"}
    assert set(chunks[0]) == head | {"prompt_token_ids", "prompt_text"}
    assert set(chunks[0]["choices"][0]) == {"index", "delta", "logprobs", "finish_reason"}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    last = chunks[-2]["choices"][0]
    assert set(chunks[-2]) == head
    assert set(last) == {"index", "delta", "logprobs", "finish_reason", "stop_reason", "token_ids"}
    assert set(chunks[-1]) == head | {"usage", "system_fingerprint"}
    assert chunks[-1]["usage"]["completion_tokens"] == 3
    assert set(chunks[-1]["usage"]) == {"prompt_tokens", "total_tokens", "completion_tokens"}


def test_completion_stream_fingerprint_on_last_chunk(base_url: str, model: str) -> None:
    body = {"model": model, "prompt": "Hello", "max_tokens": 2, "ignore_eos": True}
    chunks = sse_events(base_url, "/v1/completions", body)
    assert all(set(c["choices"][0]) == {"index", "text", "logprobs", "finish_reason",
                                        "stop_reason", "prompt_token_ids", "token_ids"}
               for c in chunks)  # fmt: skip
    assert "system_fingerprint" in chunks[-1]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert all("system_fingerprint" not in c for c in chunks[:-1])


@pytest.mark.parametrize(
    ("options", "usage_chunk", "per_chunk"),
    [({}, False, False), ({"include_usage": False}, False, False),
     ({"include_usage": True}, True, False),
     ({"include_usage": True, "continuous_usage_stats": True}, True, True),
     ({"continuous_usage_stats": True}, False, False)],
)  # fmt: skip
def test_stream_options_usage(
    base_url: str, model: str, options: dict[str, bool], usage_chunk: bool, per_chunk: bool
) -> None:
    body = {"model": model, "prompt": "Hello", "max_tokens": 3, "ignore_eos": True,
            "stream_options": options}  # fmt: skip
    chunks = sse_events(base_url, "/v1/completions", body)
    assert (chunks[-1]["choices"] == []) is usage_chunk
    text_chunks = [c for c in chunks if c["choices"]]
    assert all(("usage" in c) is per_chunk for c in text_chunks)
    if per_chunk:
        assert text_chunks[-1]["usage"]["completion_tokens"] == 3


def test_request_id_header(base_url: str, model: str) -> None:
    body = {"model": model, "prompt": "x", "max_tokens": 1}
    status, data, _ = raw(base_url, "/v1/completions", body, headers={"X-Request-Id": "conf-1"})
    assert status == 200
    assert json.loads(data)["id"] == "cmpl-conf-1"


LONG_PROMPT = [5] * 600  # token ids: longer than --max-model-len 512 in both servers


@pytest.mark.parametrize(
    ("path", "body", "status", "err_type", "param"),
    [
        ("/v1/completions", '{"prompt": ', 400, "Bad Request", "body.11"),
        ("/v1/completions", [1, 2], 400, "Bad Request", "body"),
        ("/v1/completions", {"prompt": "x", "max_tokens": "ten"}, 400, "Bad Request",
         "body.max_tokens"),
        ("/v1/completions", {"prompt": "x", "temperature": "hot"}, 400, "Bad Request",
         "body.temperature"),
        ("/v1/completions", {"prompt": "x", "max_tokens": 100000}, 400, "BadRequestError",
         "max_tokens"),
        ("/v1/completions", {"prompt": "x", "max_tokens": 0}, 400, "BadRequestError",
         "max_tokens"),
        ("/v1/completions", {"prompt": LONG_PROMPT, "max_tokens": 1}, 400, "BadRequestError",
         "input_tokens"),
        ("/v1/completions", {"prompt": [5] * 512, "max_tokens": 1}, 400, "BadRequestError",
         "max_tokens"),
        ("/v1/completions", {"max_tokens": 1}, 400, "BadRequestError", "prompt"),
        ("/v1/completions", {"prompt": "x", "stream_options": {"include_usage": True}}, 400,
         "BadRequestError", "stream_options"),
        ("/v1/chat/completions", {"messages": []}, 400, "BadRequestError", None),
        ("/v1/chat/completions", {"messages": "hi"}, 400, "Bad Request", "body.messages"),
        ("/v1/chat/completions", {}, 400, "Bad Request", "body.messages"),
        ("/v1/completions", {"model": "no-such-model", "prompt": "x"}, 404, "NotFoundError",
         "model"),
        ("/v1/chat/completions", {"model": "no-such-model", "messages": [{"role": "user",
         "content": "x"}]}, 404, "NotFoundError", "model"),
        ("/tokenize", {"model": "no-such-model", "prompt": "x"}, 404, "NotFoundError", "model"),
        ("/tokenize", {}, 400, "Bad Request", "body.prompt"),
    ],
)  # fmt: skip
def test_error_shape(
    base_url: str, model: str, path: str, body: Any, status: int, err_type: str,
    param: str | None,
) -> None:  # fmt: skip
    if isinstance(body, dict):
        body = {"model": model, **body}
    got, data, _ = raw(base_url, path, body)
    assert got == status
    error = json.loads(data)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"], error["code"]) == (err_type, param, status)
    assert isinstance(error["message"], str)
    assert error["message"]


def test_validation_message_lists_pydantic_errors(base_url: str, model: str) -> None:
    body = {"model": model, "prompt": "x", "max_tokens": "ten"}
    error = json.loads(raw(base_url, "/v1/completions", body)[1])["error"]
    assert error["message"] == (
        "1 validation error:\n  {'type': 'int_parsing', 'loc': 'body.max_tokens', 'msg': "
        "'Input should be a valid integer, unable to parse string as an integer', 'input': 'ten'}"
    )


def test_max_tokens_is_clamped_to_the_context_left(base_url: str, model: str) -> None:
    body = {"model": model, "prompt": [5] * 500, "max_tokens": 20, "ignore_eos": True}
    status, data, _ = raw(base_url, "/v1/completions", body)
    assert status == 200
    usage = json.loads(data)["usage"]
    assert usage == {"prompt_tokens": 500, "completion_tokens": 12, "total_tokens": 512,
                     "prompt_tokens_details": None, "completion_tokens_details": None}  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "status", "detail"),
    [("GET", "/v1/nothing", 404, "Not Found"), ("GET", "/v1/completions", 405,
      "Method Not Allowed")],
)  # fmt: skip
def test_unknown_route_and_method(
    base_url: str, method: str, path: str, status: int, detail: str
) -> None:
    got, data, _ = raw(base_url, path, method=method)
    assert (got, json.loads(data)) == (status, {"detail": detail})


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


ML = {"model_name", "engine"}
# Family -> (type, label names), as a real vLLM 0.32 exports them (the ones the simulator has).
EXPECTED_FAMILIES: dict[str, tuple[str, set[str]]] = {
    "vllm:num_requests_running": ("gauge", ML),
    "vllm:num_requests_waiting": ("gauge", ML),
    "vllm:num_requests_waiting_by_reason": ("gauge", ML | {"reason"}),
    "vllm:engine_sleep_state": ("gauge", ML | {"sleep_state"}),
    "vllm:kv_cache_usage_perc": ("gauge", ML),
    **{name: ("counter", ML) for name in (
        "vllm:prefix_cache_queries", "vllm:prefix_cache_hits",
        "vllm:external_prefix_cache_queries", "vllm:external_prefix_cache_hits",
        "vllm:mm_cache_queries", "vllm:mm_cache_hits", "vllm:num_preemptions",
        "vllm:prompt_tokens", "vllm:prompt_tokens_cached", "vllm:generation_tokens")},
    "vllm:prompt_tokens_by_source": ("counter", ML | {"source"}),
    "vllm:prompt_tokens_cached_by_source": ("counter", ML | {"source"}),
    "vllm:request_success": ("counter", ML | {"finished_reason"}),
    "vllm:admission_rejections": ("counter", {"model_name", "reason"}),
    **{name: ("histogram", ML | {"le"}) for name in (
        "vllm:request_prompt_tokens", "vllm:request_generation_tokens",
        "vllm:request_max_num_generation_tokens", "vllm:request_params_n",
        "vllm:request_params_max_tokens", "vllm:time_to_first_token_seconds",
        "vllm:inter_token_latency_seconds", "vllm:request_time_per_output_token_seconds",
        "vllm:e2e_request_latency_seconds", "vllm:request_queue_time_seconds",
        "vllm:request_inference_time_seconds", "vllm:request_prefill_time_seconds",
        "vllm:request_decode_time_seconds", "vllm:request_num_preemptions",
        "vllm:request_prefill_kv_computed_tokens")},
    "vllm:cache_config_info": ("gauge", {
        "_block_size_resolved", "block_size", "cache_dtype", "cache_hit_alignment_tokens",
        "effective_attention_block_size", "enable_mamba_shared_prefix_checkpoint",
        "enable_prefix_caching", "engine", "gpu_memory_utilization", "hash_block_size",
        "is_attention_free", "kv_cache_dtype_skip_layers", "kv_cache_layout",
        "kv_cache_max_concurrency", "kv_cache_memory_bytes", "kv_cache_size_tokens",
        "kv_offloading_backend", "kv_offloading_size", "kv_sharing_fast_prefill",
        "mamba_block_size", "mamba_cache_dtype", "mamba_cache_mode", "mamba_page_size_padded",
        "mamba_ssm_cache_dtype", "num_cpu_blocks", "num_gpu_blocks", "num_gpu_blocks_override",
        "prefix_cache_retention_interval", "prefix_caching_hash_algo", "prefix_match_unit",
        "replayssm_buffer_len", "skip_page_size_padded", "sliding_window", "swa_bounded_replay",
        "use_kda_recoverssm", "use_replayssm", "user_specified_block_size"}),
}  # fmt: skip
LABEL_VALUES = {
    ("vllm:request_success", "finished_reason"): {"stop", "length", "abort", "error",
                                                  "repetition"},
    ("vllm:prompt_tokens_by_source", "source"): {"local_compute", "local_cache_hit",
                                                 "external_kv_transfer"},
    ("vllm:prompt_tokens_cached_by_source", "source"): {"device", "host", "p2p", "disk",
                                                        "external_unspecified"},
    ("vllm:num_requests_waiting_by_reason", "reason"): {"capacity", "deferred"},
    ("vllm:admission_rejections", "reason"): {"max_num_queued_reqs", "max_num_queued_tokens"},
}  # fmt: skip


def test_metrics_names_types_labels(base_url: str, client: openai.OpenAI, model: str) -> None:
    client.completions.create(model=model, prompt="warm up", max_tokens=2)
    status, data, headers = raw(base_url, "/metrics")
    assert status == 200
    assert headers["content-type"] == "text/plain; version=1.0.0; charset=utf-8"
    families = {f.name: f for f in text_string_to_metric_families(data.decode())}
    for name, (kind, labels) in EXPECTED_FAMILIES.items():
        assert families[name].type == kind, name
        main = [s for s in families[name].samples if not s.name.endswith("_created")]
        assert {frozenset(s.labels) for s in main if not s.name.endswith(("_sum", "_count"))} \
            == {frozenset(labels)}, name  # fmt: skip
    for (name, label), values in LABEL_VALUES.items():
        assert {s.labels[label] for s in families[name].samples} == values, name
    info = families["vllm:cache_config_info"].samples[0].labels
    assert info["prefix_caching_hash_algo"] == "sha256"
    assert int(info["kv_cache_size_tokens"]) == int(info["num_gpu_blocks"]) * int(
        info["block_size"]
    )
    length = [s for s in families["vllm:request_success"].samples
              if s.labels["finished_reason"] == "length" and s.name.endswith("_total")]  # fmt: skip
    assert length[0].value >= 1
    assert families["vllm:request_params_n"].samples
