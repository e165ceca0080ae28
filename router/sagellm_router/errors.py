"""OpenAI-style API errors: ``{"error": {"message", "type", "param", "code"}}``, typed as vLLM
types them (``BadRequestError``, ``NotFoundError``, ...; request-schema failures
``"Bad Request"`` with ``param: "body.<field>"``, see ``schema_error``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from aiohttp import web

from sagellm_core.vllm_errors import SCHEMA_ERROR_TYPE, schema_message

_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    413: "RequestTooLargeError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
    500: "InternalServerError",
    502: "BadGatewayError",
    503: "ServiceUnavailableError",
    504: "GatewayTimeoutError",
}


class ApiError(Exception):
    """An error answered to the client with an HTTP status and an OpenAI-style JSON body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        retry_after: float | None = None,
        err_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.retry_after = retry_after
        self.err_type = err_type

    @property
    def error_type(self) -> str:
        return self.err_type or _TYPES.get(self.status, "APIError")

    def payload(self) -> dict[str, object]:
        return error_payload(self.status, self.message, param=self.param, err_type=self.err_type)

    def headers(self) -> dict[str, str]:
        """``Content-Type`` and, for 429/503, ``Retry-After`` in whole seconds."""
        headers = {"Content-Type": "application/json"}
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(1, round(self.retry_after)))
        return headers

    def body(self) -> bytes:
        return orjson.dumps(self.payload())

    def response(self) -> web.Response:
        return web.Response(status=self.status, body=self.body(), headers=self.headers())


def error_payload(
    status: int, message: str, *, param: str | None = None, err_type: str | None = None
) -> dict[str, object]:
    """The JSON body vLLM (>= 0.10.1) and OpenAI use for errors; ``err_type`` defaults to the
    status's type."""
    return {
        "error": {
            "message": message,
            "type": err_type or _TYPES.get(status, "APIError"),
            "param": param,
            "code": status,
        }
    }


def schema_error(errors: Sequence[Mapping[str, Any]]) -> ApiError:
    """A request that fails vLLM's request schema, answered as vLLM answers it (400,
    ``"Bad Request"``, ``body.<field>``, pydantic's error list as the message)."""
    message, param = schema_message(errors)
    return ApiError(400, message, param=param, err_type=SCHEMA_ERROR_TYPE)


def sse_error_event(status: int, message: str) -> bytes:
    """The SSE tail sent when a stream cannot be completed: an error event then ``[DONE]``."""
    return b"data: " + orjson.dumps(error_payload(status, message)) + b"\n\ndata: [DONE]\n\n"
