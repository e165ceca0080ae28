"""vLLM's request-validation error text (pure), shared by the simulator and the router.

vLLM 0.32 answers a request that fails its schema (malformed JSON, a wrong type, a missing
field) through FastAPI's validation handler: HTTP 400, ``type: "Bad Request"``,
``param: "body.<field>"`` and a message listing pydantic's errors
(``1 validation error:\\n  {'type': 'int_parsing', 'loc': 'body.max_tokens', ...}``).
Semantic checks (``VLLMValidationError``) answer ``type: "BadRequestError"`` with a message that
ends ``(parameter=<field>, value=<value>)``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

SCHEMA_ERROR_TYPE = "Bad Request"
SEMANTIC_ERROR_TYPE = "BadRequestError"
MAX_REPORTED_ERRORS = 10
MAX_INPUT_CHARS = 200
# pydantic-core's schema-kind names that appear in ``loc`` for unions and wrappers.
_INTERNAL_LOC = frozenset(
    [
        "function-wrap", "function-after", "function-before", "function-plain", "json-or-python",
        "lax-or-strict", "chain", "default", "nullable", "tagged-union", "union", "call",
        "arguments", "is-instance", "is-subclass", "callable", "str", "int", "float", "bool",
        "bytes", "bytearray", "list", "tuple", "dict", "set", "frozenset", "complex", "none",
        "nonetype",
    ]
)  # fmt: skip
_BRACKETED = re.compile(r"[\[\]{}()]")


def clean_loc(loc: Sequence[Any]) -> str:
    """``("body", "prompt", "list[int]")`` -> ``"body.prompt"`` (drops union markers)."""
    parts = [str(p) for p in loc]
    kept = [p for p in parts if not (_BRACKETED.search(p) or p.lower() in _INTERNAL_LOC)]
    return ".".join(kept or parts)


def _summarize(value: Any) -> Any:
    if isinstance(value, list | tuple | set | frozenset | dict):
        return f"<{type(value).__name__} of {len(value)} items>"
    text = value if isinstance(value, str) else str(value)
    return text[:MAX_INPUT_CHARS] + "...[truncated]" if len(text) > MAX_INPUT_CHARS else text


def schema_message(errors: Sequence[Mapping[str, Any]]) -> tuple[str, str | None]:
    """The message and ``param`` FastAPI's handler in vLLM gives for pydantic ``errors`` (each
    with ``type``, ``loc`` starting at ``"body"``, ``msg``, optional ``input`` and ``ctx``)."""
    shown = []
    for err in errors[:MAX_REPORTED_ERRORS]:
        item = {k: err[k] for k in ("type", "loc", "msg", "input", "ctx") if k in err}
        item["loc"] = clean_loc(err["loc"])
        if "input" in item:
            item["input"] = _summarize(item["input"])
        if "ctx" in item:
            item["ctx"] = {k: v if isinstance(v, int | float) else str(v)
                           for k, v in item["ctx"].items()}  # fmt: skip
        shown.append(f"  {item}\n")
    count = len(errors)
    label = "error" if count == 1 else "errors"
    more = f"  ...and {count - len(shown)} more {label}\n" if count > len(shown) else ""
    message = f"{count} validation {label}:\n{''.join(shown)}{more}".rstrip()
    return message, clean_loc(errors[0]["loc"]) if errors else None


def json_invalid(raw: bytes) -> dict[str, Any] | None:
    """The pydantic ``json_invalid`` error for a body that is not JSON, or None if it is
    (position and reason as Python's ``json`` reports them, like FastAPI)."""
    try:
        json.loads(raw)
    except json.JSONDecodeError as exc:
        position, reason = exc.pos, exc.msg
    except UnicodeDecodeError as exc:
        position, reason = exc.start, "invalid UTF-8"
    else:
        return None
    return {"type": "json_invalid", "loc": ("body", position), "msg": "JSON decode error",
            "input": {}, "ctx": {"error": reason}}  # fmt: skip


def not_object(data: Any) -> dict[str, Any]:
    """The pydantic error for a JSON body that is not an object."""
    msg = "Input should be a valid dictionary or object to extract fields from"
    return {"type": "model_attributes_type", "loc": ("body",), "input": data, "msg": msg}


def semantic_message(message: str, parameter: str | None = None, value: Any = None) -> str:
    """A ``VLLMValidationError`` message: ``message (parameter=..., value=...)``."""
    extras = [f"{k}={v}" for k, v in (("parameter", parameter), ("value", value)) if v is not None]
    return f"{message} ({', '.join(extras)})" if extras else message


class SemanticError(ValueError):
    """A ``VLLMValidationError``: answered 400 ``BadRequestError`` with ``param``."""

    def __init__(self, message: str, parameter: str | None = None, value: Any = None) -> None:
        super().__init__(semantic_message(message, parameter, value))
        self.param = parameter


def check_lengths(prompt_len: int | None, limit: int | None, field: str, max_model_len: int) -> int:
    """vLLM 0.32's length rules; returns the effective ``max_tokens``.

    ``max_tokens`` above ``max_model_len`` and a prompt longer than ``max_model_len`` are
    refused; otherwise ``max_tokens`` is clamped to ``max_model_len - prompt`` (not refused),
    and an effective value below 1 is refused. ``prompt_len`` None (not counted yet) checks
    ``max_tokens`` alone and returns it.
    """
    if limit is not None and limit > max_model_len:
        raise SemanticError(
            f"{field}={limit} cannot be greater than max_model_len={max_model_len}. "
            "Please request fewer output tokens.", field, limit,
        )  # fmt: skip
    if prompt_len is None:
        return limit if limit is not None else max_model_len
    if prompt_len > max_model_len:
        raise SemanticError(
            f"This model's maximum context length is {max_model_len} tokens. However, your "
            f"prompt contains {prompt_len} input tokens, which exceeds this limit even without "
            "any output tokens. Please reduce the length of the input prompt.",
            "input_tokens", prompt_len,
        )  # fmt: skip
    room = max_model_len - prompt_len
    max_tokens = room if limit is None else min(room, limit)
    if max_tokens < 1:
        raise SemanticError(
            f"max_tokens must be at least 1, got {max_tokens}.", "max_tokens", max_tokens
        )
    return max_tokens
