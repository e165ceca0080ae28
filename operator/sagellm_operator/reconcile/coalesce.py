"""Coalesce bursts of triggers into one run per key.

Inputs: a key (e.g. one pool) and the job to run for it. A trigger schedules the job after
``delay`` seconds unless a run for that key is already pending (not yet started), in which case
it is absorbed: that run reads fresh state and sees the change too. A trigger that arrives while
a run is executing schedules one more run. Errors are logged; the resync timer retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable

log = logging.getLogger(__name__)


class Coalescer:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._pending: set[Hashable] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def trigger(
        self, key: Hashable, job: Callable[[], Awaitable[None]], delay: float | None = None
    ) -> bool:
        """Schedule ``job`` for ``key`` after ``delay`` (default: the coalescer's); False when
        an already pending run absorbs it."""
        if key in self._pending:
            return False
        self._pending.add(key)
        task = asyncio.create_task(self._run(key, job, self.delay if delay is None else delay))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _run(self, key: Hashable, job: Callable[[], Awaitable[None]], delay: float) -> None:
        await asyncio.sleep(delay)
        self._pending.discard(key)  # from now on a trigger means "run again after this one"
        try:
            await job()
        except Exception:
            log.exception("coalesced reconcile failed", extra={"key": str(key)})

    async def idle(self) -> None:
        """Wait until no run is pending or executing (for tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
