"""Request bodies (pydantic) and their validation into a ``Prepared`` request.

Unknown fields are accepted and ignored, as vLLM does (it logs them). Sampling fields
(temperature, top_p, stop, logprobs, ...) are accepted but do not change the simulated output.
Every validation failure raises ``ApiError`` carrying vLLM's error type, status and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sagellm_sim.pd import KvParamsError, KvRequest, parse_kv_params
from sagellm_sim.tokenizer import render_chat, tokenize

Kind = Literal["completion", "chat"]


class ApiError(Exception):
    """An error answered with vLLM's ``{"error": {...}}`` JSON shape."""

    def __init__(
        self, message: str, status: int = 400, err_type: str = "BadRequestError",
        param: str | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.message = message
        self.status = status
        self.err_type = err_type
        self.param = param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.err_type,
                          "param": self.param, "code": self.status}}  # fmt: skip


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")


class StreamOptions(_Body):
    include_usage: bool = True  # vLLM's default when stream_options is present
    continuous_usage_stats: bool = False


class _Common(_Body):
    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    seed: int | None = None
    ignore_eos: bool = False
    min_tokens: int = Field(default=0, ge=0)
    n: int = Field(default=1, ge=1)
    kv_transfer_params: dict[str, Any] | None = None
    cache_salt: str | None = None


class CompletionBody(_Common):
    prompt: str | list[int] | list[str] | list[list[int]]


class ContentPart(_Body):
    type: str
    text: str | None = None


class ChatMessage(_Body):
    role: str
    content: str | list[ContentPart] | None = None


class ChatBody(_Common):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)


class TokenizeBody(_Body):
    model: str | None = None
    prompt: str | list[int] | None = None
    messages: list[ChatMessage] | None = None


@dataclass(frozen=True)
class Prepared:
    """A validated generation request, ready for an engine."""

    kind: Kind
    model: str
    prompt_ids: list[int]
    max_tokens: int
    stream: bool
    include_usage: bool
    continuous_usage: bool
    seed: int | None
    ignore_eos: bool
    min_tokens: int
    kv: KvRequest | None
    cache_salt: str | None


def decode_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(f"Invalid JSON body: {exc}", param="body") from exc


def validate(model: type[_Body], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise ApiError(f"{where}: {err['msg']} (got {err.get('input')!r})", param=where) from exc


def chat_prompt_ids(messages: list[ChatMessage]) -> list[int]:
    turns = []
    for m in messages:
        if isinstance(m.content, list):
            text = "".join(p.text or "" for p in m.content if p.type == "text")
        else:
            text = m.content or ""
        turns.append((m.role, text))
    return tokenize(render_chat(turns))


def completion_prompt_ids(body: CompletionBody) -> list[int]:
    prompt = body.prompt
    if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int):
        if len(prompt) != 1:
            raise ApiError(
                "prompt: batched prompts (a list of several prompts) are not supported by the "
                "simulator; send one prompt per request",
                param="prompt",
            )
        single = prompt[0]
        ids = tokenize(single) if isinstance(single, str) else list(single)
    elif isinstance(prompt, str):
        ids = tokenize(prompt)
    else:
        ids = [t for t in prompt if isinstance(t, int)]
    if not ids:
        raise ApiError("prompt: the prompt cannot be empty", param="prompt")
    return ids


def prepare(kind: Kind, data: Any, default_model: str, max_model_len: int) -> Prepared:
    """Validate a completion or chat body and compute its prompt tokens and limits."""
    body: CompletionBody | ChatBody
    if kind == "completion":
        body = completion = validate(CompletionBody, data)
        ids = completion_prompt_ids(completion)
        limit, limit_field, prompt_field = body.max_tokens, "max_tokens", "prompt"
    else:
        body = chat = validate(ChatBody, data)
        ids = chat_prompt_ids(chat.messages)
        limit = chat.max_completion_tokens or chat.max_tokens
        limit_field = "max_completion_tokens" if chat.max_completion_tokens else "max_tokens"
        prompt_field = "messages"
    if body.n != 1:
        raise ApiError("n: only n=1 is supported by the simulator", param="n")
    max_tokens = _check_lengths(len(ids), limit, (prompt_field, limit_field), max_model_len)
    try:
        kv = parse_kv_params(body.kv_transfer_params)
    except KvParamsError as exc:
        raise ApiError(str(exc), param=exc.param) from exc
    opts = body.stream_options
    return Prepared(
        kind=kind, model=body.model or default_model, prompt_ids=ids, max_tokens=max_tokens,
        stream=body.stream, include_usage=bool(opts and opts.include_usage),
        continuous_usage=bool(opts and opts.continuous_usage_stats), seed=body.seed,
        ignore_eos=body.ignore_eos, min_tokens=body.min_tokens, kv=kv,
        cache_salt=body.cache_salt,
    )  # fmt: skip


def _check_lengths(
    prompt_len: int, limit: int | None, fields: tuple[str, str], max_model_len: int
) -> int:
    prompt_field, field = fields
    if prompt_len >= max_model_len:
        raise ApiError(
            f"This model's maximum context length is {max_model_len} tokens. However, your "
            f"request has {prompt_len} input tokens. Please reduce the length of the input.",
            param=prompt_field,
        )
    if limit is None:
        return max_model_len - prompt_len
    if prompt_len + limit > max_model_len:
        raise ApiError(
            f"'{field}' is too large: {limit}. This model's maximum context length is "
            f"{max_model_len} tokens and your request has {prompt_len} input tokens "
            f"({limit} > {max_model_len} - {prompt_len}).",
            param=field,
        )
    return limit
