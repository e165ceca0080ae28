"""The admission seam: every request passes ``Admission.admit`` before routing.

Scheduling policies (fifo, priority, slo_aware, cost_optimized, adaptive) will plug in here; for
now ``ConcurrencyLimit`` admits up to ``max_concurrent`` requests and answers 429 beyond that.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from sagellm_router.errors import ApiError
from sagellm_router.types import PoolSnapshot
from sagellm_router.validation import ParsedRequest


class Admission(Protocol):
    """Decides whether (and when) a request may proceed to routing."""

    def admit(
        self, request: ParsedRequest, pool: PoolSnapshot
    ) -> AbstractAsyncContextManager[None]: ...


class ConcurrencyLimit:
    """Admit at most ``max_concurrent`` requests at once; reject the rest with 429."""

    def __init__(self, max_concurrent: int) -> None:
        self._max = max_concurrent
        self.active = 0

    def admit(self, request: ParsedRequest, pool: PoolSnapshot) -> ConcurrencyLimit:
        """``async with``: 429 when at the limit, else one slot until the block exits."""
        return self  # no per-request state: the limiter is its own context manager

    async def __aenter__(self) -> None:
        if self.active >= self._max:
            raise ApiError(
                429,
                f"router is at its limit of {self._max} concurrent requests; retry shortly",
                retry_after=1,
            )
        self.active += 1

    async def __aexit__(self, *_: object) -> None:
        self.active -= 1
