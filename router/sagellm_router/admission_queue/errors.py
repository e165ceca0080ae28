"""Admission errors as the router's OpenAI-style ``ApiError`` (status, message, Retry-After)."""

from __future__ import annotations

from collections.abc import Mapping

from sagellm_core.api.pool import SchedulingSpec
from sagellm_core.scheduling.metadata import MetadataError, RequestMetadata, parse_metadata
from sagellm_core.tokens import TokenCounter, estimate_tokens
from sagellm_router.errors import ApiError


class Rejected(ApiError):
    """The queue refused a request: 429 (rate limit, queue full), 503 (queue timeout, SLO
    shed) with ``retry_after_s``, or 422 when retrying cannot help (cost budget)."""

    def __init__(self, status: int, reason: str, retry_after_s: float | None, *, kind: str) -> None:
        super().__init__(status, reason, retry_after=retry_after_s)
        self.reason = reason
        self.retry_after_s = retry_after_s
        self.kind = kind


def metadata_from_request(
    headers: Mapping[str, str],
    body: Mapping[str, object],
    spec: SchedulingSpec,
    *,
    now: float,
    count: TokenCounter = estimate_tokens,
) -> RequestMetadata:
    """``parse_metadata`` (prompt tokens counted with ``count``) with a bad header turned into
    a 400 naming it."""
    try:
        return parse_metadata(headers, body, spec, now=now, count=count)
    except MetadataError as err:
        raise ApiError(400, str(err), param=err.header) from err
