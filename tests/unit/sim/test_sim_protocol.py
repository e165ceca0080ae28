"""Request validation: every bad input gets a 400 naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from sagellm_sim.protocol import ApiError, Kind, decode_json, prepare

MSG = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize(
    ("kind", "body", "param", "text"),
    [
        ("completion", {"prompt": "hi", "max_tokens": "ten"}, "max_tokens", "valid integer"),
        ("completion", {"prompt": "hi", "max_tokens": 0}, "max_tokens", "greater than or equal"),
        ("completion", {"max_tokens": 5}, "prompt", "Field required"),
        ("completion", {"prompt": ""}, "prompt", "cannot be empty"),
        ("completion", {"prompt": ["a", "b"]}, "prompt", "batched prompts"),
        ("completion", {"prompt": "hi", "stream": "maybe"}, "stream", "valid boolean"),
        ("completion", {"prompt": "hi", "n": 2}, "n", "n=1"),
        ("completion", {"prompt": "hi", "max_tokens": 100}, "max_tokens", "maximum context length"),
        ("completion", {"prompt": "word " * 80}, "prompt", "maximum context length"),
        ("chat", {"messages": []}, "messages", "at least 1"),
        ("chat", {"max_tokens": 3}, "messages", "Field required"),
        ("chat", {"messages": [{"content": "x"}]}, "messages.0.role", "Field required"),
        ("chat", {"messages": MSG, "max_completion_tokens": 999}, "max_completion_tokens",
         "too large"),
        ("chat", {"messages": MSG, "kv_transfer_params": 3}, "kv_transfer_params", "dictionary"),
        ("chat", {"messages": MSG, "kv_transfer_params": {"do_remote_prefill": True}},
         "kv_transfer_params.remote_engine_id", "required"),
        ("completion", "just a string", "body", "valid dictionary"),
    ],
)  # fmt: skip
def test_bad_bodies_are_400_naming_the_field(kind: Kind, body: Any, param: str, text: str) -> None:
    with pytest.raises(ApiError) as err:
        prepare(kind, body, "m", max_model_len=64)
    assert err.value.status == 400
    assert err.value.param == param
    assert text in err.value.message
    assert err.value.body()["error"]["type"] == "BadRequestError"


def test_malformed_json_is_a_400() -> None:
    with pytest.raises(ApiError, match="Invalid JSON"):
        decode_json(b"{oops")


@pytest.mark.parametrize(
    ("kind", "body", "expect"),
    [
        ("completion", {"prompt": "hello world"}, {"max_tokens": 62, "model": "m"}),
        ("completion", {"prompt": [5, 6, 7], "max_tokens": 3}, {"prompt_ids": [5, 6, 7]}),
        ("completion", {"prompt": [[5, 6]], "model": "x"}, {"prompt_ids": [5, 6], "model": "x"}),
        ("completion", {"prompt": "a", "stream": True, "stream_options": {}},
         {"include_usage": True, "stream": True}),
        ("completion", {"prompt": "a", "stream": True}, {"include_usage": False}),
        ("chat", {"messages": MSG, "max_tokens": 4, "max_completion_tokens": 2},
         {"max_tokens": 2}),
        ("chat", {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                  "unknown_field": 1}, {"kind": "chat"}),
    ],
)  # fmt: skip
def test_good_bodies(kind: Kind, body: dict[str, Any], expect: dict[str, Any]) -> None:
    prep = prepare(kind, body, "m", max_model_len=64)
    for key, value in expect.items():
        assert getattr(prep, key) == value
