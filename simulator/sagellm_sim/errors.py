"""vLLM's error bodies: ``{"error": {"message", "type", "param", "code"}}`` (pure functions;
the message text is ``sagellm_core.vllm_errors``', shared with the router).

vLLM 0.32 answers bad requests in two styles, both reproduced here (measured against the real
server, see docs/simulator.md "Conformance against real vLLM"):

- request-schema failures (malformed JSON, a wrong type, a missing field) come from FastAPI's
  validation handler: ``type: "Bad Request"``, ``param: "body.<field>"`` and a message
  listing pydantic's errors (``1 validation error:\\n  {'type': 'int_parsing', ...}``);
- semantic checks raise ``VLLMValidationError``: ``type: "BadRequestError"`` and the message
  ends with ``(parameter=<field>, value=<value>)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sagellm_core.vllm_errors import SCHEMA_ERROR_TYPE, schema_message, semantic_message


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
    return ApiError(semantic_message(message, parameter, value), param=parameter)


def schema_error(errors: Sequence[dict[str, Any]]) -> ApiError:
    """FastAPI's request-validation answer for pydantic errors whose ``loc`` starts at body."""
    message, param = schema_message(errors)
    return ApiError(message, 400, SCHEMA_ERROR_TYPE, param)


def json_error(position: int, reason: str) -> ApiError:
    """Malformed JSON: FastAPI reports it as a ``json_invalid`` validation error."""
    err = {"type": "json_invalid", "loc": ("body", position), "msg": "JSON decode error",
           "input": {}, "ctx": {"error": reason}}  # fmt: skip
    return schema_error([err])


def not_found_model(model: str, names: Sequence[str]) -> ApiError:
    return ApiError(f"The model `{model}` does not exist. Valid aliases: {', '.join(names)}.",
                    404, "NotFoundError", "model")  # fmt: skip
