"""The sync face's event loop: one private loop on a daemon thread per client, so a plain
(non-async) program can call the client while its HTTP connections stay on one loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def in_event_loop() -> bool:
    """True when called from code running inside an event loop (use ``await`` there)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class LoopThread:
    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="unified-client", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        """Drive an async iterator from sync code, one item per step."""
        while True:
            try:
                yield self.run(_next(items))
            except StopAsyncIteration:
                return

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


async def _next(items: AsyncIterator[T]) -> T:
    return await items.__anext__()
