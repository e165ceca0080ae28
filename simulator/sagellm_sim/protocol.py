"""Request bodies (pydantic) and their validation into a ``Prepared`` request.

Unknown fields are accepted and ignored, as vLLM does (it logs them). Sampling fields
(temperature, top_p, stop, logprobs, ...) are accepted but do not change the simulated output.
Every validation failure raises ``ApiError`` in the style vLLM 0.32 answers it (see errors.py):
schema failures as FastAPI's "Bad Request", semantic checks as "BadRequestError".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from sagellm_core.sim_tokens import chat_tokens, tokenize
from sagellm_core.vllm_errors import SemanticError
from sagellm_core.vllm_errors import check_lengths as vllm_check_lengths
from sagellm_sim.errors import ApiError, invalid, json_error, schema_error
from sagellm_sim.pd import KvParamsError, KvRequest, parse_kv_params

Kind = Literal["completion", "chat"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")


class StreamOptions(_Body):
    include_usage: bool | None = False
    continuous_usage_stats: bool | None = False


class _Common(_Body):
    model: str | None = None
    max_tokens: int | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    seed: int | None = None
    ignore_eos: bool = False
    min_tokens: int = 0
    n: int = 1
    kv_transfer_params: dict[str, Any] | None = None
    cache_salt: str | None = None
    # Sampling fields: typed as in vLLM (a wrong type is a 400), no effect on the output.
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    user: str | None = None
    priority: int = 0


class CompletionBody(_Common):
    prompt: str | list[int] | list[str] | list[list[int]]
    logprobs: int | None = None
    echo: bool | None = False


class ContentPart(_Body):
    type: str
    text: str | None = None


class ChatMessage(_Body):
    role: str
    content: str | list[ContentPart] | None = None


class ChatBody(_Common):
    messages: list[ChatMessage]
    max_completion_tokens: int | None = None
    logprobs: bool | None = False
    top_logprobs: int | None = None


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
    except json.JSONDecodeError as exc:
        raise json_error(exc.pos, exc.msg) from exc
    except UnicodeDecodeError as exc:
        raise json_error(exc.start, "invalid UTF-8") from exc


def validate(model: type[_Body], data: Any) -> Any:
    if not isinstance(data, dict):
        raise schema_error([{"type": "model_attributes_type", "loc": ("body",), "input": data,
                             "msg": "Input should be a valid dictionary or object to extract "
                                    "fields from"}])  # fmt: skip
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise schema_error(errors) from exc


def check_before(kind: Kind, data: Any) -> None:
    """vLLM's ``mode="before"`` model validators, which run ahead of the field checks."""
    if not isinstance(data, dict):
        return
    if data.get("stream_options") and not data.get("stream"):
        raise invalid("Stream options can only be defined when `stream=True`.", "stream_options")
    prompt = data.get("prompt")
    if kind == "completion" and (prompt is None or prompt == ""):
        raise invalid("Either prompt or prompt_embeds must be provided and non-empty.", "prompt")


def chat_prompt_ids(messages: list[ChatMessage]) -> list[int]:
    return chat_tokens([m.model_dump() for m in messages])


def completion_prompt_ids(body: CompletionBody) -> list[int]:
    prompt = body.prompt
    if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int):
        if len(prompt) != 1:
            raise invalid(
                "Batched prompts (a list of several prompts) are not supported by the "
                "simulator; send one prompt per request", "prompt",
            )  # fmt: skip
        single = prompt[0]
        ids = tokenize(single) if isinstance(single, str) else list(single)
    elif isinstance(prompt, str):
        ids = tokenize(prompt)
    else:
        ids = [t for t in prompt if isinstance(t, int)]
    if not ids:
        raise invalid("Either prompt or prompt_embeds must be provided and non-empty.", "prompt")
    return ids


def prepare(kind: Kind, data: Any, default_model: str, max_model_len: int) -> Prepared:
    """Validate a completion or chat body and compute its prompt tokens and limits."""
    check_before(kind, data)
    body: CompletionBody | ChatBody
    if kind == "completion":
        body = completion = validate(CompletionBody, data)
        ids = completion_prompt_ids(completion)
        limit, limit_field = body.max_tokens, "max_tokens"
    else:
        body = chat = validate(ChatBody, data)
        if not chat.messages:
            raise ApiError("Cannot apply chat template to an empty conversation. Provide at "
                           "least one message.")  # fmt: skip
        ids = chat_prompt_ids(chat.messages)
        use_mct = chat.max_completion_tokens is not None
        limit = chat.max_completion_tokens if use_mct else chat.max_tokens
        limit_field = "max_completion_tokens" if use_mct else "max_tokens"
    _check_sampling(body)
    max_tokens = check_lengths(len(ids), limit, limit_field, max_model_len)
    try:
        kv = parse_kv_params(body.kv_transfer_params)
    except KvParamsError as exc:
        raise ApiError(str(exc), param=exc.param) from exc
    opts = body.stream_options
    return Prepared(
        kind=kind, model=body.model or default_model, prompt_ids=ids, max_tokens=max_tokens,
        stream=bool(body.stream), include_usage=bool(opts and opts.include_usage),
        continuous_usage=bool(opts and opts.continuous_usage_stats), seed=body.seed,
        ignore_eos=body.ignore_eos, min_tokens=body.min_tokens, kv=kv,
        cache_salt=body.cache_salt,
    )  # fmt: skip


def _check_sampling(body: _Common) -> None:
    if body.n < 1:
        raise ApiError(f"n must be at least 1, got {body.n}.")
    if body.n != 1:
        raise invalid("n > 1 is not supported by the simulator; send n=1", "n", body.n)
    if body.min_tokens < 0:
        raise ApiError(f"min_tokens must be greater than or equal to 0, got {body.min_tokens}.")


def check_lengths(prompt_len: int, limit: int | None, field: str, max_model_len: int) -> int:
    """vLLM 0.32's length rules (``sagellm_core.vllm_errors.check_lengths``) as an ApiError."""
    try:
        return vllm_check_lengths(prompt_len, limit, field, max_model_len)
    except SemanticError as exc:
        raise ApiError(str(exc), param=exc.param) from exc
