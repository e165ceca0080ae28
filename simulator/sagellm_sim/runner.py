"""The asyncio driver of one engine core: one task, one sleep per engine step.

HTTP handlers ``submit`` a request and wait on its ``RequestHandle``; the loop schedules a batch,
sleeps for the modelled step time (x time scale x slow factor), applies the step and pushes the
new tokens to the handles. A handle merges tokens its consumer has not picked up yet (like vLLM's
output collector), so a slow client costs no extra work per token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from sagellm_sim.config import Faults
from sagellm_sim.engine import EngineCore, Output, SimRequest, Status
from sagellm_sim.kv_events import KvEvent
from sagellm_sim.pd import HeldKV

log = logging.getLogger("sagellm_sim.engine")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
Publish = Callable[[list[KvEvent]], None]


class MetricsSink(Protocol):
    def on_tokens(self, engine: int, gaps: list[float]) -> None: ...

    def on_finish(self, engine: int, req: SimRequest, now: float) -> None: ...


class RequestHandle:
    """Channel from the engine loop to the HTTP handler of one request."""

    __slots__ = ("_event", "aborted", "finished", "last_token_at", "pending", "req")

    def __init__(self, req: SimRequest) -> None:
        self.req = req
        self.pending = 0
        self.finished = False
        self.aborted = False  # ended by the engine shutting down (``--shutdown-timeout 0``)
        self.last_token_at: float | None = None
        self._event = asyncio.Event()

    def push(self, n: int, finished: bool) -> None:
        self.pending += n
        self.finished = self.finished or finished
        self._event.set()

    async def next(self) -> tuple[int, bool]:
        """Tokens produced since the last call (>= 1 unless finished), and whether done."""
        await self._event.wait()
        self._event.clear()
        n, self.pending = self.pending, 0
        return n, self.finished


class EngineRunner:
    """Owns one ``EngineCore`` and the task that steps it."""

    def __init__(
        self,
        core: EngineCore,
        index: int,
        time_scale: float,
        faults: Faults,
        metrics: MetricsSink,
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.core = core
        self.index = index
        self.time_scale = time_scale
        self.faults = faults
        self.metrics = metrics
        self.clock = clock
        self._sleep = sleep
        self.held = HeldKV()
        self._handles: dict[str, RequestHandle] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.publish: Publish | None = None  # KV-event sink, set when --kv-events-config is on

    def start(self) -> None:
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._loop(), name=f"engine-{self.index}")
            self._task.add_done_callback(self._on_exit)

    def _on_exit(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("engine %d died", self.index, exc_info=task.exception())

    @property
    def dead(self) -> bool:
        """The engine loop stopped with an error (vLLM's EngineDeadError: /health answers 503)."""
        task = self._task
        return task is not None and task.done() and not task.cancelled()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def load(self) -> int:
        """vLLM's DP load-balancing score: waiting x 4 + running."""
        return len(self.core.waiting) * 4 + len(self.core.running)

    def submit(self, req: SimRequest) -> RequestHandle:
        handle = RequestHandle(req)
        self._handles[req.request_id] = handle
        self.core.add(req)
        self._wake.set()
        return handle

    def abort(self, handle: RequestHandle) -> None:
        if handle.req.status is not Status.FINISHED:
            self.core.abort(handle.req)
            log.info("request aborted request_id=%s", handle.req.request_id)
        self._handles.pop(handle.req.request_id, None)

    def abort_all(self) -> int:
        """End every request of this engine as aborted (vLLM's SIGTERM with no drain timeout).

        Each handle is woken with ``aborted`` set; its HTTP handler answers the abort and then
        releases the request's KV through ``abort``. Returns the number of requests ended.
        """
        handles = list(self._handles.values())
        self._handles.clear()
        for handle in handles:
            handle.aborted = True
            handle.push(0, True)
        return len(handles)

    @property
    def busy(self) -> bool:
        """Requests are queued or running on this engine."""
        return bool(self._handles) or self.core.has_work()

    def hold_kv(self, req: SimRequest, seconds: float) -> None:
        self.held.hold(req, self.clock() + seconds)
        self._wake.set()

    def release_kv(self, request_id: str) -> bool:
        req = self.held.pop(request_id)
        if req is None:
            return False
        self.core.release_held(req)
        return True

    async def _loop(self) -> None:
        while True:
            now = self.clock()
            for req in self.held.expired(now):
                log.warning(
                    "prefilled KV never pulled; freeing", extra={"request_id": req.request_id}
                )
                self.core.release_held(req)
            batch = self.core.schedule(now)
            if not batch:
                await self._idle(now)
                continue
            dt = self.core.cost.step_seconds(batch.work) * self.time_scale * self.faults.slow_factor
            await self._sleep(dt)
            self._deliver(self.core.complete(batch, self.clock()))
            self.flush_events()

    def reset_prefix_cache(self) -> bool:
        """Forget every cached block; False while blocks are in use.

        Its ``AllBlocksCleared`` goes out with the next engine step's batch, as in vLLM 0.32.
        """
        return self.core.cache.reset()

    def flush_events(self) -> None:
        """Publish the KV events of the last step as one batch (vLLM publishes per step)."""
        events = self.core.cache.take_events()
        if events and self.publish is not None:
            self.publish(events)

    async def _idle(self, now: float) -> None:
        wakeups = [t for t in (self.core.next_ready_at(), self.held.next_expiry()) if t is not None]
        self._wake.clear()
        timeout = max(0.0, min(wakeups) - now) if wakeups else None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    def _deliver(self, outputs: list[Output]) -> None:
        now = self.clock()
        gaps = []
        for out in outputs:
            handle = self._handles.get(out.request.request_id)
            if handle is None:
                continue
            if handle.last_token_at is not None:
                gaps.append(now - handle.last_token_at)
            handle.last_token_at = now
            if out.finished:
                del self._handles[out.request.request_id]
                self.metrics.on_finish(self.index, out.request, now)
            handle.push(out.new_tokens, out.finished)
        if gaps:
            self.metrics.on_tokens(self.index, gaps)
