"""Response bodies and SSE chunks in vLLM's OpenAI-compatible shapes (pure functions).

Field sets and their order follow what vLLM 0.32 sends (captured from the real server):
``token_ids``/``prompt_token_ids``/``routed_experts`` on choices, ``ec_transfer_params`` and
``metrics`` next to ``kv_transfer_params``, ``system_fingerprint`` on non-streaming bodies and
on the last chunk of a stream (the usage chunk when ``include_usage``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sagellm_sim.protocol import Kind

DONE = b"data: [DONE]\n\n"
# The event vLLM 0.32 sends in place of further chunks when its engine stops under a stream
# (measured: SIGTERM without --shutdown-timeout); note json.dumps' default ", "/": " spacing.
ENGINE_DEAD_MESSAGE = "EngineCore encountered an issue. See stack trace (above) for the root cause."
ENGINE_DEAD_EVENT = (
    b"data: "
    + json.dumps({"error": {"message": ENGINE_DEAD_MESSAGE, "type": "InternalServerError",
                            "param": None, "code": 500}}).encode()
    + b"\n\n"
)  # fmt: skip


@dataclass(frozen=True)
class ResponseCtx:
    """Identity fields shared by every chunk of one response."""

    kind: Kind
    id: str
    created: int
    model: str
    fingerprint: str | None = None

    @property
    def chunk_object(self) -> str:
        return "text_completion" if self.kind == "completion" else "chat.completion.chunk"


def sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def usage(
    prompt: int, completion: int, cached: int | None = None, *, final: bool = True
) -> dict[str, Any]:
    """Usage of a non-streaming body (``final``) or of a stream's usage chunk (not final)."""
    out: dict[str, Any] = {"prompt_tokens": prompt, "total_tokens": prompt + completion,
                           "completion_tokens": completion}  # fmt: skip
    if cached is not None:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    elif final:
        out["prompt_tokens_details"] = None
    if final:
        out["completion_tokens_details"] = None
    return out


def full_response(
    ctx: ResponseCtx, text: str, finish_reason: str, use: dict[str, Any],
    kv_params: dict[str, Any] | None,
) -> dict[str, Any]:  # fmt: skip
    """The non-streaming body of a completion or chat completion."""
    head = {"id": ctx.id, "object": "", "created": ctx.created, "model": ctx.model}
    if ctx.kind == "completion":
        choice: dict[str, Any] = {
            "index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason,
            "stop_reason": None, "token_ids": None, "prompt_logprobs": None,
            "prompt_token_ids": None, "routed_experts": None,
        }  # fmt: skip
        head["object"] = "text_completion"
        extra: dict[str, Any] = {}
    else:
        message: dict[str, Any] = {
            "role": "assistant", "content": text, "refusal": None, "annotations": None,
            "audio": None, "function_call": None, "reasoning": None,
        }  # fmt: skip
        choice = {"index": 0, "message": message, "logprobs": None,
                  "finish_reason": finish_reason, "stop_reason": None, "token_ids": None,
                  "routed_experts": None}  # fmt: skip
        head["object"] = "chat.completion"
        extra = {"prompt_logprobs": None, "prompt_token_ids": None, "prompt_text": None}
    return {
        **head, "choices": [choice], "service_tier": None,
        "system_fingerprint": ctx.fingerprint, "usage": use, **extra,
        "kv_transfer_params": kv_params, "ec_transfer_params": None, "metrics": None,
    }  # fmt: skip


def chunk(
    ctx: ResponseCtx, text: str, finish_reason: str | None, *, role: bool = False,
    use: dict[str, Any] | None = None, last: bool = False,
) -> bytes:  # fmt: skip
    """One SSE event carrying a text delta (and the finish reason on the last one).

    ``last`` stamps ``system_fingerprint``: vLLM puts it on the finishing chunk unless a usage
    chunk follows.
    """
    if ctx.kind == "completion":
        choice: dict[str, Any] = {"index": 0, "text": text, "logprobs": None,
                                  "finish_reason": finish_reason, "stop_reason": None,
                                  "prompt_token_ids": None, "token_ids": None}  # fmt: skip
    else:
        delta: dict[str, Any] = (
            {"role": "assistant", "content": text} if role else {"content": text}
        )
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        if finish_reason is not None:
            choice["stop_reason"] = None
        if not role:
            choice["token_ids"] = None
    obj: dict[str, Any] = {"id": ctx.id, "object": ctx.chunk_object, "created": ctx.created,
                           "model": ctx.model, "choices": [choice]}  # fmt: skip
    if use is not None:
        obj["usage"] = use
    if role:
        obj.update(prompt_token_ids=None, prompt_text=None)
    if last and ctx.fingerprint is not None:
        obj["system_fingerprint"] = ctx.fingerprint
    return sse(obj)


def usage_chunk(ctx: ResponseCtx, use: dict[str, Any]) -> bytes:
    obj = {"id": ctx.id, "object": ctx.chunk_object, "created": ctx.created,
           "model": ctx.model, "choices": [], "usage": use}  # fmt: skip
    if ctx.fingerprint is not None:
        obj["system_fingerprint"] = ctx.fingerprint
    return sse(obj)


def error_event(message: str, err_type: str, code: int) -> bytes:
    return sse({"error": {"message": message, "type": err_type, "param": None, "code": code}})


def _perm_id(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def models_list(
    names: tuple[str, ...], root: str, max_model_len: int, created: int
) -> dict[str, Any]:
    data = [
        {"id": name, "object": "model", "created": created, "owned_by": "vllm", "root": root,
         "parent": None, "max_model_len": max_model_len,
         "permission": [{"id": f"modelperm-{_perm_id(name)}", "object": "model_permission",
                         "created": created, "allow_create_engine": False,
                         "allow_sampling": True, "allow_logprobs": True,
                         "allow_search_indices": False, "allow_view": True,
                         "allow_fine_tuning": False, "organization": "*", "group": None,
                         "is_blocking": False}]}
        for name in names
    ]  # fmt: skip
    return {"object": "list", "data": data}
