"""Requests waiting for an engine's answer, by endpoint, so an ejection can release them.

When an engine is ejected because it hangs (a first-byte timeout or a stall), the other
requests still waiting for its first byte would otherwise wait out their own timeouts
(``read_idle_s`` for a non-streaming request: minutes). ``release`` cancels those waits; the
waiting code turns that into ``Released`` and the request is retried on another endpoint.
"""

from __future__ import annotations

import asyncio


class Released(Exception):
    """The wait was ended because its endpoint was ejected."""


class PendingAnswers:
    """The tasks waiting on each endpoint URL; all in one event loop."""

    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Task[object]]] = {}
        self._released: set[asyncio.Task[object]] = set()

    def waiting(self, url: str) -> _Waiting:
        """``with``: mark the current task as waiting on ``url`` for the block; raises
        ``Released`` when ``release(url)`` ended the wait."""
        return _Waiting(self, url)

    def release(self, url: str) -> int:
        """End every wait on ``url``; returns how many."""
        tasks = self._waiting.pop(url, set())
        for task in tasks:
            self._released.add(task)
            task.cancel()
        return len(tasks)


class _Waiting:
    """The ``with`` of ``PendingAnswers.waiting`` (a class: every request passes it, and a
    generator-based context manager costs a few µs more)."""

    __slots__ = ("_pending", "_task", "_tasks", "_url")

    def __init__(self, pending: PendingAnswers, url: str) -> None:
        self._pending, self._url = pending, url
        self._task: asyncio.Task[object] | None = None
        self._tasks: set[asyncio.Task[object]] = set()

    def __enter__(self) -> None:
        task = self._task = asyncio.current_task()
        if task is not None:
            self._tasks = self._pending._waiting.setdefault(self._url, set())
            self._tasks.add(task)

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        task, tasks, pending = self._task, self._tasks, self._pending
        if task is None:
            return
        tasks.discard(task)
        if not tasks and pending._waiting.get(self._url) is tasks:
            del pending._waiting[self._url]
        cancelled = kind is not None and issubclass(kind, asyncio.CancelledError)
        if cancelled and task in pending._released:  # by release(), not by its caller
            pending._released.discard(task)
            task.uncancel()
            raise Released(self._url) from None
