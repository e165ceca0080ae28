"""What an admission hands out: the ``Ticket`` (allowed instances, the held one) and the
``async with`` that holds it (``Admitted``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sagellm_core.scheduling.metadata import RequestMetadata

if TYPE_CHECKING:
    from sagellm_router.admission_queue.queue import AdmissionQueue

Clock = Callable[[], float]


@dataclass(slots=True)
class Ticket:
    """A granted admission: the instances the request may use, and later the one it holds."""

    meta: RequestMetadata
    allowed: tuple[str, ...]
    reason: str
    admitted_s: float
    waited_s: float
    instance: str | None = None
    first_token_s: float | None = None
    _clock: Clock = field(default=lambda: 0.0, repr=False)
    _on_bind: Callable[[Ticket, str], None] = field(default=lambda t, i: None, repr=False)

    def bind(self, instance: str) -> None:
        """Hold the slot on ``instance`` (the routing strategy's pick) until release."""
        if self.instance is not None:
            raise RuntimeError(f"ticket {self.meta.request_id} is already bound to {self.instance}")
        self._on_bind(self, instance)
        self.instance = instance

    def rebind(self, instance: str) -> None:
        """Move the held slot to ``instance`` (a retry on another endpoint); binds if unbound."""
        if self.instance is None:
            self.bind(instance)
        elif instance != self.instance:
            self._on_bind(self, instance)
            self.instance = instance

    def first_token(self) -> None:
        """Record that the first token reached the client (for TTFT SLO accounting)."""
        if self.first_token_s is None:
            self.first_token_s = self._clock()


class Admitted:
    """The ``async with`` of ``AdmissionQueue.admit`` (a class: cheaper than a generator-based
    context manager on the per-request path)."""

    __slots__ = ("_meta", "_queue", "_ticket")

    def __init__(self, queue: AdmissionQueue, meta: RequestMetadata) -> None:
        self._queue, self._meta = queue, meta
        self._ticket: Ticket | None = None

    async def __aenter__(self) -> Ticket:
        self._ticket = await self._queue._acquire(self._meta)
        return self._ticket

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        assert self._ticket is not None
        cancelled = kind is not None and issubclass(kind, asyncio.CancelledError)
        if cancelled:
            self._queue.stats.cancelled += 1
        self._queue._release(self._ticket, failed=kind is not None and not cancelled)
