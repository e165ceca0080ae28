"""vLLM's error bodies: ``{"error": {"message", "type", "param", "code"}}`` (pure functions).

vLLM 0.32 answers bad requests in two styles, both reproduced here (measured against the real
server, see docs/simulator.md "Conformance against real vLLM"):

- request-schema failures (malformed JSON, a wrong type, a missing field) come from FastAPI's
  validation handler: ``type: "Bad Request"``, ``param: "body.<field>"`` and a message
  listing pydantic's errors (``1 validation error:\\n  {'type': 'int_parsing', ...}``);
- semantic checks raise ``VLLMValidationError``: ``type: "BadRequestError"`` and the message
  ends with ``(parameter=<field>, value=<value>)``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

MAX_REPORTED_ERRORS = 10
MAX_INPUT_CHARS = 200
# pydantic-core's schema-kind names that appear in ``loc`` for unions and wrappers.
_INTERNAL_LOC = frozenset(
    [
        "function-wrap",
        "function-after",
        "function-before",
        "function-plain",
        "json-or-python",
        "lax-or-strict",
        "chain",
        "default",
        "nullable",
        "tagged-union",
        "union",
        "call",
        "arguments",
        "is-instance",
        "is-subclass",
        "callable",
        "str",
        "int",
        "float",
        "bool",
        "bytes",
        "bytearray",
        "list",
        "tuple",
        "dict",
        "set",
        "frozenset",
        "complex",
        "none",
        "nonetype",
    ]
)
_BRACKETED = re.compile(r"[\[\]{}()]")


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


def invalid(message: str, parameter: str | None = None, value: Any = None) -> ApiError:
    """A ``VLLMValidationError``: the message carries ``(parameter=..., value=...)``."""
    extras = [f"{k}={v}" for k, v in (("parameter", parameter), ("value", value)) if v is not None]
    text = f"{message} ({', '.join(extras)})" if extras else message
    return ApiError(text, param=parameter)


def clean_loc(loc: Sequence[Any]) -> str:
    """``("body", "prompt", "list[int]")`` -> ``"body.prompt"`` (drops union markers)."""
    parts = [str(p) for p in loc]
    kept = [p for p in parts if not (_BRACKETED.search(p) or p.lower() in _INTERNAL_LOC)]
    return ".".join(kept or parts)


def _summarize(value: Any) -> Any:
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        return f"<{type(value).__name__} of {len(value)} items>"
    text = value if isinstance(value, str) else str(value)
    return text[:MAX_INPUT_CHARS] + "...[truncated]" if len(text) > MAX_INPUT_CHARS else text


def schema_error(errors: Sequence[dict[str, Any]]) -> ApiError:
    """FastAPI's request-validation answer for pydantic errors whose ``loc`` starts at body."""
    shown = []
    for err in errors[:MAX_REPORTED_ERRORS]:
        item = {k: err[k] for k in ("type", "loc", "msg", "input", "ctx") if k in err}
        item["loc"] = clean_loc(err["loc"])
        if "input" in item:
            item["input"] = _summarize(item["input"])
        if "ctx" in item:
            item["ctx"] = {k: v if isinstance(v, (int, float)) else str(v)
                           for k, v in item["ctx"].items()}  # fmt: skip
        shown.append(f"  {item}\n")
    count = len(errors)
    label = "error" if count == 1 else "errors"
    more = f"  ...and {count - len(shown)} more {label}\n" if count > len(shown) else ""
    message = f"{count} validation {label}:\n{''.join(shown)}{more}".rstrip()
    param = clean_loc(errors[0]["loc"]) if errors else None
    return ApiError(message, 400, "Bad Request", param)


def json_error(position: int, reason: str) -> ApiError:
    """Malformed JSON: FastAPI reports it as a ``json_invalid`` validation error."""
    err = {"type": "json_invalid", "loc": ("body", position), "msg": "JSON decode error",
           "input": {}, "ctx": {"error": reason}}  # fmt: skip
    return schema_error([err])


def not_found_model(model: str, names: Sequence[str]) -> ApiError:
    return ApiError(f"The model `{model}` does not exist. Valid aliases: {', '.join(names)}.",
                    404, "NotFoundError", "model")  # fmt: skip
