"""OpenAI request fields -> engine inputs, engine outputs -> OpenAI JSON/SSE bytes (pure)."""

from __future__ import annotations

from typing import Any

import orjson

from sagellm_router.validation import CHAT

# OpenAI/vLLM request field -> SamplingParams field (same name unless mapped).
SAMPLING_FIELDS = {
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "seed": "seed",
    "stop": "stop",
    "min_tokens": "min_tokens",
    "ignore_eos": "ignore_eos",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "repetition_penalty": "repetition_penalty",
}
DEFAULT_COMPLETION_MAX_TOKENS = 16  # the OpenAI/vLLM default for /v1/completions


class BadRequest(ValueError):
    """The request cannot be served in-process; the message says why (answered as 400)."""


def sampling_fields(path: str, body: dict[str, Any]) -> dict[str, Any]:
    """The SamplingParams keyword arguments a request asks for."""
    fields: dict[str, Any] = {}
    for name, target in SAMPLING_FIELDS.items():
        if body.get(name) is not None:
            fields[target] = body[name]
    if "max_tokens" not in fields and path != CHAT:
        fields["max_tokens"] = DEFAULT_COMPLETION_MAX_TOKENS
    if body.get("n", 1) != 1:
        raise BadRequest("the in-process executor serves n=1 only")
    return fields


def completion_prompt(body: dict[str, Any]) -> str | list[int]:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        return prompt[0]
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return prompt
    raise BadRequest("the in-process executor serves one prompt per request")


def plain_chat(messages: list[dict[str, Any]]) -> str:
    """A template-free rendering for tokenizers without a chat template."""
    lines = [f"{m.get('role')}: {_text(m.get('content'))}" for m in messages]
    return "\n".join(lines) + "\nassistant:"


def _text(content: object) -> str:
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def whole(
    path: str, rid: str, model: str, created: int, text: str, finish: str | None,
    use: dict[str, int],
) -> bytes:  # fmt: skip
    if path == CHAT:
        choice: dict[str, Any] = {
            "index": 0, "message": {"role": "assistant", "content": text},
            "finish_reason": finish, "stop_reason": None,
        }  # fmt: skip
        kind, prefix = "chat.completion", "chatcmpl"
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish,
                  "stop_reason": None}  # fmt: skip
        kind, prefix = "text_completion", "cmpl"
    body = {"id": f"{prefix}-{rid}", "object": kind, "created": created, "model": model,
            "choices": [choice], "usage": use}  # fmt: skip
    return orjson.dumps(body)


def chunk(
    path: str, rid: str, model: str, created: int, text: str | None, finish: str | None,
    use: dict[str, int] | None = None, role: bool = False,
) -> bytes:  # fmt: skip
    """One SSE event; ``use`` given: the usage-only chunk (``choices: []``)."""
    if path == CHAT:
        delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
        if text:
            delta["content"] = text
        choices: list[dict[str, Any]] = [{"index": 0, "delta": delta, "finish_reason": finish}]
        kind, prefix = "chat.completion.chunk", "chatcmpl"
    else:
        choices = [{"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}]
        kind, prefix = "text_completion", "cmpl"
    body: dict[str, Any] = {"id": f"{prefix}-{rid}", "object": kind, "created": created,
                            "model": model, "choices": [] if use else choices}  # fmt: skip
    if use:
        body["usage"] = use
    return b"data: " + orjson.dumps(body) + b"\n\n"


def error_body(status: int, message: str, param: str | None = None) -> bytes:
    kind = "BadRequestError" if status < 500 else "InternalServerError"
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param,
                                   "code": status}})  # fmt: skip


DONE = b"data: [DONE]\n\n"
