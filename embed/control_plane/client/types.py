"""Typed results and errors of ``UnifiedInferenceClient``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ClientError(Exception):
    """A request failed: ``status`` (HTTP status; 0 when no answer came), the server's
    ``message``, its error ``type`` and ``param``, and ``retry_after`` seconds if given."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status, self.message, self.type, self.param = status, message, type, param
        self.retry_after, self.request_id = retry_after, request_id


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def of(cls, raw: object) -> Usage | None:
        if not isinstance(raw, dict):
            return None
        return cls(*(int(raw.get(k) or 0) for k in ("prompt_tokens", "completion_tokens",
                                                      "total_tokens")))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole answer of ``chat`` or ``complete``."""

    text: str
    finish_reason: str | None
    usage: Usage | None
    model: str
    request_id: str | None
    instance: str | None
    prefill_instance: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One streamed piece: ``text`` (delta), ``finish_reason`` on the last content chunk,
    ``usage`` on the usage chunk (``stream_options.include_usage``)."""

    text: str
    finish_reason: str | None
    usage: Usage | None
    request_id: str | None
    instance: str | None


@dataclass(frozen=True, slots=True)
class Embeddings:
    """``vectors[i]`` is the embedding of input ``i``."""

    vectors: list[list[float]]
    usage: Usage | None
    model: str
    request_id: str | None
    instance: str | None
