"""Requests waiting for an engine's answer, by endpoint, so an ejection can release them.

When an engine is ejected because it hangs (a first-byte timeout or a stall), the other
requests still waiting for its first byte would otherwise wait out their own timeouts
(``read_idle_s`` for a non-streaming request: minutes). ``release`` cancels those waits; the
waiting code turns that into ``Released`` and the request is retried on another endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class Released(Exception):
    """The wait was ended because its endpoint was ejected."""


class PendingAnswers:
    """The tasks waiting on each endpoint URL; all in one event loop."""

    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Task[object]]] = {}
        self._released: set[asyncio.Task[object]] = set()

    @contextlib.contextmanager
    def waiting(self, url: str) -> Iterator[None]:
        """Mark the current task as waiting on ``url`` for the block; raises ``Released``
        when ``release(url)`` ended the wait."""
        task = asyncio.current_task()
        if task is None:
            yield
            return
        tasks = self._waiting.setdefault(url, set())
        tasks.add(task)
        try:
            yield
        except asyncio.CancelledError:
            if task not in self._released:
                raise
            self._released.discard(task)
            task.uncancel()
            raise Released(url) from None
        finally:
            tasks.discard(task)
            if not tasks and self._waiting.get(url) is tasks:
                del self._waiting[url]

    def release(self, url: str) -> int:
        """End every wait on ``url``; returns how many."""
        tasks = self._waiting.pop(url, set())
        for task in tasks:
            self._released.add(task)
            task.cancel()
        return len(tasks)
