"""The one polling helper of every test tier: wait for a condition, never for a fixed time.

``e2e/`` (against kind) and ``tests/`` (against the emulator and local processes) both import
it. It measures its budget on the running event loop's clock, so a test that fast-forwards the
loop's time (looptime) fast-forwards the wait too.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

#: Budget of a wait when the caller names none: generous, because the machines running the
#: tests are shared and slow; a healthy condition is met long before it.
DEFAULT_WITHIN_S = 60.0


async def eventually(
    check: Callable[[], Any],
    what: str = "the condition",
    within: float = DEFAULT_WITHIN_S,
    interval: float = 0.05,
    *,
    tolerate: tuple[type[BaseException], ...] = (),
) -> Any:
    """Call ``check`` (plain or async) until it returns something truthy, and return that.

    Exceptions of the ``tolerate`` types count as "not yet" (a port-forward blip, a process
    still starting). After ``within`` seconds it fails naming ``what`` and the last value seen.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: Any = None
    while True:
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await result
        except tolerate as exc:
            result = None
            last = exc
        else:
            last = result
        if result:
            return result
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {within:g}s waiting for {what}; last: {last!r}")
        await asyncio.sleep(interval)
