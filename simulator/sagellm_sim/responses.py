"""Response bodies and SSE chunks in vLLM's OpenAI-compatible shapes (pure functions)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sagellm_sim.protocol import Kind

DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True)
class ResponseCtx:
    """Identity fields shared by every chunk of one response."""

    kind: Kind
    id: str
    created: int
    model: str

    @property
    def chunk_object(self) -> str:
        return "text_completion" if self.kind == "completion" else "chat.completion.chunk"


def sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def usage(prompt: int, completion: int, cached: int | None = None) -> dict[str, Any]:
    details = None if cached is None else {"cached_tokens": cached}
    return {
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
        "prompt_tokens_details": details,
    }


def full_response(
    ctx: ResponseCtx, text: str, finish_reason: str, use: dict[str, Any],
    kv_params: dict[str, Any] | None,
) -> dict[str, Any]:  # fmt: skip
    """The non-streaming body of a completion or chat completion."""
    if ctx.kind == "completion":
        choice: dict[str, Any] = {"index": 0, "text": text, "logprobs": None,
                                  "finish_reason": finish_reason, "stop_reason": None,
                                  "prompt_logprobs": None}  # fmt: skip
        obj = "text_completion"
    else:
        message: dict[str, Any] = {
            "role": "assistant", "content": text, "refusal": None, "annotations": None,
            "audio": None, "function_call": None, "tool_calls": [], "reasoning_content": None,
        }  # fmt: skip
        choice = {"index": 0, "message": message, "logprobs": None,
                  "finish_reason": finish_reason, "stop_reason": None}  # fmt: skip
        obj = "chat.completion"
    return {
        "id": ctx.id, "object": obj, "created": ctx.created, "model": ctx.model,
        "choices": [choice], "service_tier": None, "system_fingerprint": None, "usage": use,
        "prompt_logprobs": None, "kv_transfer_params": kv_params,
    }  # fmt: skip


def chunk(
    ctx: ResponseCtx, text: str, finish_reason: str | None, *, role: bool = False,
    use: dict[str, Any] | None = None,
) -> bytes:  # fmt: skip
    """One SSE event carrying a text delta (and the finish reason on the last one)."""
    if ctx.kind == "completion":
        choice: dict[str, Any] = {"index": 0, "text": text, "logprobs": None,
                                  "finish_reason": finish_reason, "stop_reason": None}  # fmt: skip
    else:
        delta: dict[str, Any] = (
            {"role": "assistant", "content": text} if role else {"content": text}
        )
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        if finish_reason is not None:
            choice["stop_reason"] = None
    obj: dict[str, Any] = {"id": ctx.id, "object": ctx.chunk_object, "created": ctx.created,
                           "model": ctx.model, "choices": [choice]}  # fmt: skip
    if use is not None:
        obj["usage"] = use
    return sse(obj)


def usage_chunk(ctx: ResponseCtx, use: dict[str, Any]) -> bytes:
    return sse({"id": ctx.id, "object": ctx.chunk_object, "created": ctx.created,
                "model": ctx.model, "choices": [], "usage": use})  # fmt: skip


def error_event(message: str, err_type: str, code: int) -> bytes:
    return sse({"error": {"message": message, "type": err_type, "param": None, "code": code}})


def models_list(
    names: tuple[str, ...], root: str, max_model_len: int, created: int
) -> dict[str, Any]:
    data = [
        {"id": name, "object": "model", "created": created, "owned_by": "vllm", "root": root,
         "parent": None, "max_model_len": max_model_len,
         "permission": [{"id": f"modelperm-{name}", "object": "model_permission",
                         "created": created, "allow_create_engine": False,
                         "allow_sampling": True, "allow_logprobs": True,
                         "allow_search_indices": False, "allow_view": True,
                         "allow_fine_tuning": False, "organization": "*", "group": None,
                         "is_blocking": False}]}
        for name in names
    ]  # fmt: skip
    return {"object": "list", "data": data}
