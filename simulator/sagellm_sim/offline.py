"""Run an ``EngineCore`` on a virtual clock (no asyncio, no sleeping): discrete-event replay.

Used by the unit tests and handy for what-if questions ("how does TTFT move with TP=2?").
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sagellm_sim.engine import EngineCore, SimRequest


@dataclass
class Trace:
    """What happened during a replay."""

    steps: int = 0
    end: float = 0.0
    max_waiting: int = 0
    max_running: int = 0
    token_times: dict[str, list[float]] = field(default_factory=dict)

    def itl(self, request_id: str) -> list[float]:
        t = self.token_times[request_id]
        return [b - a for a, b in itertools.pairwise(t)]


def replay(
    core: EngineCore,
    requests: Iterable[SimRequest],
    *,
    until: float = float("inf"),
    on_step: Callable[[EngineCore, float], None] | None = None,
) -> Trace:
    """Feed ``requests`` at their ``arrival`` times and step until all finish (or ``until``)."""
    pending = sorted(requests, key=lambda r: r.arrival)
    trace = Trace()
    now = pending[0].arrival if pending else 0.0
    while (pending or core.has_work()) and now < until:
        while pending and pending[0].arrival <= now:
            core.add(pending.pop(0))
        batch = core.schedule(now)
        trace.max_waiting = max(trace.max_waiting, len(core.waiting))
        trace.max_running = max(trace.max_running, len(core.running))
        if not batch:
            wakeups = [t for t in (core.next_ready_at(),) if t is not None and t > now]
            if pending:
                wakeups.append(pending[0].arrival)
            if not wakeups:
                break  # nothing can ever run (e.g. a request larger than the cache)
            now = min(wakeups)
            continue
        now += core.cost.step_seconds(batch.work)
        for out in core.complete(batch, now):
            trace.token_times.setdefault(out.request.request_id, []).append(now)
        trace.steps += 1
        if on_step is not None:
            on_step(core, now)
    trace.end = now
    return trace
