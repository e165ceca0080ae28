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
