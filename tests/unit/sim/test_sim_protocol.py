"""Request validation: every bad input gets a 400 naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from sagellm_sim.errors import ApiError
from sagellm_sim.protocol import Kind, check_lengths, decode_json, prepare

MSG = [{"role": "user", "content": "hello"}]


SCHEMA = "Bad Request"  # FastAPI's request-validation answer in vLLM
CHECK = "BadRequestError"  # vLLM's own validation


# Expected (type, param, text) as real vLLM 0.32 answers (max_model_len 64 here, 512 there).
@pytest.mark.parametrize(
    ("kind", "body", "err_type", "param", "text"),
    [
        ("completion", {"prompt": "hi", "max_tokens": "ten"}, SCHEMA, "body.max_tokens",
         "'type': 'int_parsing'"),
        ("completion", {"prompt": "hi", "max_tokens": 0}, CHECK, "max_tokens",
         "max_tokens must be at least 1, got 0. (parameter=max_tokens, value=0)"),
        ("completion", {"prompt": "hi", "max_tokens": -1}, CHECK, "max_tokens", "got -1."),
        ("completion", {"max_tokens": 5}, CHECK, "prompt",
         "Either prompt or prompt_embeds must be provided and non-empty. (parameter=prompt)"),
        ("completion", {"prompt": ""}, CHECK, "prompt", "Either prompt or prompt_embeds"),
        ("completion", {"prompt": 5}, SCHEMA, "body.prompt", "4 validation errors:"),
        ("completion", {"prompt": ["a", "b"]}, CHECK, "prompt", "Batched prompts"),
        ("completion", {"prompt": "hi", "stream": "maybe"}, SCHEMA, "body.stream",
         "'input': 'maybe'"),
        ("completion", {"prompt": "hi", "temperature": "hot"}, SCHEMA, "body.temperature",
         "float_parsing"),
        ("completion", {"prompt": "hi", "stream_options": {"include_usage": True}}, CHECK,
         "stream_options", "Stream options can only be defined when `stream=True`."),
        ("completion", {"prompt": "hi", "n": 2}, CHECK, "n", "not supported by the simulator"),
        ("completion", {"prompt": "hi", "n": 0}, CHECK, None, "n must be at least 1, got 0."),
        ("completion", {"prompt": "hi", "min_tokens": -1}, CHECK, None,
         "min_tokens must be greater than or equal to 0, got -1."),
        ("completion", {"prompt": "hi", "max_tokens": 100}, CHECK, "max_tokens",
         "max_tokens=100 cannot be greater than max_model_len=64. Please request fewer output "
         "tokens. (parameter=max_tokens, value=100)"),
        ("completion", {"prompt": list(range(65))}, CHECK, "input_tokens",
         "your prompt contains 65 input tokens, which exceeds this limit even without any output "
         "tokens. Please reduce the length of the input prompt. (parameter=input_tokens, "
         "value=65)"),
        ("completion", {"prompt": list(range(64))}, CHECK, "max_tokens",
         "max_tokens must be at least 1, got 0."),
        ("chat", {"messages": []}, CHECK, None,
         "Cannot apply chat template to an empty conversation. Provide at least one message."),
        ("chat", {"max_tokens": 3}, SCHEMA, "body.messages",
         "1 validation error:\n  {'type': 'missing', 'loc': 'body.messages', 'msg': 'Field "
         "required', 'input': '<dict of 1 items>'}"),
        ("chat", {"messages": "hi"}, SCHEMA, "body.messages", "Input should be a valid list"),
        ("chat", {"messages": [{"content": "x"}]}, SCHEMA, "body.messages.0.role",
         "Field required"),
        ("chat", {"messages": MSG, "max_completion_tokens": 999}, CHECK,
         "max_completion_tokens", "max_completion_tokens=999 cannot be greater than"),
        ("chat", {"messages": MSG, "kv_transfer_params": 3}, SCHEMA, "body.kv_transfer_params",
         "dictionary"),
        ("chat", {"messages": MSG, "kv_transfer_params": {"do_remote_prefill": True}}, CHECK,
         "kv_transfer_params.remote_engine_id", "required"),
        ("completion", [1, 2], SCHEMA, "body",
         "{'type': 'model_attributes_type', 'loc': 'body', 'msg': 'Input should be a valid "
         "dictionary or object to extract fields from', 'input': '<list of 2 items>'}"),
    ],
)  # fmt: skip
def test_bad_bodies_answer_like_vllm(
    kind: Kind, body: Any, err_type: str, param: str | None, text: str
) -> None:
    with pytest.raises(ApiError) as err:
        prepare(kind, body, "m", max_model_len=64)
    assert err.value.status == 400
    assert err.value.param == param
    assert text in err.value.message
    assert err.value.body()["error"] == {"message": err.value.message, "type": err_type,
                                         "param": param, "code": 400}  # fmt: skip


def test_malformed_json_is_a_fastapi_json_invalid_error() -> None:
    with pytest.raises(ApiError) as err:
        decode_json(b'{"prompt": ')
    assert err.value.body()["error"] == {
        "message": "1 validation error:\n  {'type': 'json_invalid', 'loc': 'body.11', 'msg': "
        "'JSON decode error', 'input': '<dict of 0 items>', 'ctx': {'error': 'Expecting value'}}",
        "type": "Bad Request", "param": "body.11", "code": 400,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("prompt_len", "limit", "expect"),
    [(1, None, 63), (1, 5, 5), (60, 10, 4), (63, None, 1), (1, 64, 63)],
)
def test_max_tokens_is_clamped_to_the_room_left(
    prompt_len: int, limit: int | None, expect: int
) -> None:
    assert check_lengths(prompt_len, limit, "max_tokens", 64) == expect


@pytest.mark.parametrize(
    ("kind", "body", "expect"),
    [
        ("completion", {"prompt": "hello world"}, {"max_tokens": 62, "model": "m"}),
        ("completion", {"prompt": [5, 6, 7], "max_tokens": 3}, {"prompt_ids": [5, 6, 7]}),
        ("completion", {"prompt": [[5, 6]], "model": "x"}, {"prompt_ids": [5, 6], "model": "x"}),
        ("completion", {"prompt": "a", "stream": True, "stream_options": {}},
         {"include_usage": False, "stream": True}),
        ("completion", {"prompt": "a", "stream_options": {}}, {"stream": False}),
        ("completion", {"prompt": "a", "max_tokens": "2", "temperature": 0.5}, {"max_tokens": 2}),
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
