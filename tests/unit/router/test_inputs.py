"""Pure parsing: request bodies, config files, engine metrics, SSE usage, API keys."""

from __future__ import annotations

import pytest

from sagellm_router.auth import KeyChecker
from sagellm_router.config import ConfigError, KubernetesDiscoverySettings, parse_settings
from sagellm_router.errors import ApiError
from sagellm_router.sse import UsageScanner
from sagellm_router.stats.engine import parse_engine_stats
from sagellm_router.types import Role
from sagellm_router.validation import CHAT, COMPLETIONS, parse_body, render_prompt


@pytest.mark.parametrize(
    ("path", "raw", "model", "stream"),
    [
        (COMPLETIONS, b'{"model":"m","prompt":"hi"}', "m", False),
        (COMPLETIONS, b'{"model":"m","prompt":[1,2,3],"stream":true}', "m", True),
        (COMPLETIONS, b'{"model":"m","prompt":[[1],[2]],"max_tokens":4}', "m", False),
        (CHAT, b'{"model":"c","messages":[{"role":"user","content":"x"}]}', "c", False),
    ],
)
def test_valid_bodies(path: str, raw: bytes, model: str, stream: bool) -> None:
    parsed = parse_body(raw, path)
    assert (parsed.model, parsed.stream) == (model, stream)


@pytest.mark.parametrize(
    ("raw", "status", "param"),
    [
        (b"", 400, "body.0"),
        (b'"str"', 400, "body"),
        (b'{"model":"m","prompt":""}', 400, "prompt"),
        (b'{"model":"m","prompt":"x","stream":[1]}', 400, "body.stream"),
        (b'{"model":"","prompt":"x"}', 400, "model"),
    ],
)
def test_invalid_bodies(raw: bytes, status: int, param: str | None) -> None:
    with pytest.raises(ApiError) as info:
        parse_body(raw, COMPLETIONS)
    assert (info.value.status, info.value.param) == (status, param)
    assert info.value.payload()["error"]["code"] == status  # type: ignore[index]


def test_render_prompt_for_chat_parts() -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}]}
    assert render_prompt(CHAT, body) == "user:a\n"


def test_parse_settings_full_and_errors() -> None:
    settings = parse_settings(
        """
server: {port: 9000}
discovery:
  type: static
  pools:
    - name: p
      model: m
      routing: locality
      endpoints: [{url: "http://a:1/", role: Decode, weight: 2}]
retries: {max_attempts: 2}
"""
    )
    assert settings.server.port == 9000
    snapshot = settings.discovery.pools[0].snapshot()  # type: ignore[union-attr]
    assert snapshot.endpoints[0].url == "http://a:1"
    assert snapshot.endpoints[0].role is Role.DECODE
    assert snapshot.endpoints[0].instance == "p-0"
    k8s = parse_settings("discovery: {type: kubernetes, namespace: ns}").discovery
    assert isinstance(k8s, KubernetesDiscoverySettings)
    for bad, fragment in [
        ("server: {port: -1}", "server.port"),
        (
            "discovery: {type: static, pools: [{name: p, model: m, endpoints: [{url: x}]}]}",
            "http://",
        ),
        ("limits: {bogus: 1}", "limits.bogus"),
        ("[1", "not valid YAML"),
        ("- 1", "must be a mapping"),
    ]:
        with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
            parse_settings(bad)


METRICS = """
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3
vllm:num_requests_running{engine="1",model_name="m"} 2
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 4
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.9
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.5
# TYPE vllm:prefix_cache_hits counter
vllm:prefix_cache_hits_total{engine="0",model_name="m"} 10
vllm:prefix_cache_hits_created{engine="0",model_name="m"} 1.7e9
"""


def test_engine_stats_sum_ranks_and_prefer_new_kv_name() -> None:
    stats = parse_engine_stats(METRICS, at=5.0)
    assert (stats.running, stats.waiting, stats.kv_usage, stats.prefix_hits) == (5, 4, 0.5, 10)
    assert stats.at == 5.0
    old_only = METRICS.split("# TYPE vllm:kv_cache_usage_perc")[0]
    assert parse_engine_stats(old_only).kv_usage == 0.9


def test_usage_scanner_handles_events_split_across_chunks() -> None:
    stream = (
        b'data: {"choices":[{"text":"a"}],"usage":null}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":7}}\n\n'
        b"data: [DONE]\n\n"
    )
    for cut in range(1, len(stream)):
        scanner = UsageScanner()
        scanner.feed(stream[:cut])
        scanner.feed(stream[cut:])
        assert scanner.usage == {"prompt_tokens": 3, "completion_tokens": 7}


@pytest.mark.parametrize(
    ("header", "ok"),
    [("Bearer k1", True), ("bearer k2", True), ("Bearer k3", False), ("k1", False), (None, False)],
)
def test_key_checker(header: str | None, ok: bool) -> None:
    checker = KeyChecker(["k1", "k2"])
    if ok:
        checker.check(header)
    else:
        with pytest.raises(ApiError) as info:
            checker.check(header)
        assert info.value.status == 401
        assert "k1" not in info.value.message
    KeyChecker([]).check(None)  # disabled: anything passes
