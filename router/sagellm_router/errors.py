"""OpenAI-style API errors: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

import orjson
from aiohttp import web

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
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.retry_after = retry_after

    @property
    def error_type(self) -> str:
        return _TYPES.get(self.status, "APIError")

    def payload(self) -> dict[str, object]:
        return error_payload(self.status, self.message, param=self.param)

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


def error_payload(status: int, message: str, *, param: str | None = None) -> dict[str, object]:
    """The JSON body vLLM (>= 0.10.1) and OpenAI use for errors."""
    return {
        "error": {
            "message": message,
            "type": _TYPES.get(status, "APIError"),
            "param": param,
            "code": status,
        }
    }


def sse_error_event(status: int, message: str) -> bytes:
    """The SSE tail sent when a stream cannot be completed: an error event then ``[DONE]``."""
    return b"data: " + orjson.dumps(error_payload(status, message)) + b"\n\ndata: [DONE]\n\n"
