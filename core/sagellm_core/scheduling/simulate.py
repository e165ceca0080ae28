"""A pure discrete-event simulation of one admission queue in front of one instance.

Used by tests and benchmarks to compare policies on the same synthetic trace without any clock:
time jumps from event to event (arrivals and completions). Each job occupies one of ``slots``
for ``service_s``; its first token comes ``ttft_s`` after it starts.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from sagellm_core.scheduling.base import Placement, SchedulingPolicy, select_next
from sagellm_core.scheduling.fairshare import FairShare
from sagellm_core.scheduling.metadata import RequestMetadata
from sagellm_core.scheduling.slo import slo_met
from sagellm_core.scheduling.view import ClusterView, InstanceView, QueueItem, Signals


@dataclass(frozen=True, slots=True)
class SimJob:
    meta: RequestMetadata
    ttft_s: float
    service_s: float


@dataclass(frozen=True, slots=True)
class SimOutcome:
    request_id: str
    start_s: float | None
    done_s: float | None
    met: bool | None
    shed: bool = False


def simulate(
    policy: SchedulingPolicy, jobs: Sequence[SimJob], slots: int, *, fair: bool = True
) -> list[SimOutcome]:
    """Run ``jobs`` (any order; ``meta.arrival_s`` is the arrival) through ``policy``."""
    pending = sorted(jobs, key=lambda j: (j.meta.arrival_s, j.meta.request_id))
    by_id = {j.meta.request_id: j for j in pending}
    share = FairShare() if fair else None
    queue: list[QueueItem] = []
    running: list[float] = []  # completion times
    out: list[SimOutcome] = []
    nxt = 0
    while nxt < len(pending) or queue or running:
        now = min(
            pending[nxt].meta.arrival_s if nxt < len(pending) else float("inf"),
            running[0] if running else float("inf"),
        )
        while running and running[0] <= now:
            heapq.heappop(running)
        while nxt < len(pending) and pending[nxt].meta.arrival_s <= now:
            queue.append(QueueItem(pending[nxt].meta, nxt, now))
            nxt += 1
        view = _view(slots, len(running), len(queue))
        policy.observe(view, now)
        for item in [q for q in queue if policy.should_shed(q, view, now)]:
            queue.remove(item)
            out.append(SimOutcome(item.meta.request_id, None, None, False, shed=True))
        while queue and len(running) < slots:
            view = _view(slots, len(running), len(queue))
            chosen = select_next(policy, queue, view, now, _always, share)
            if chosen is None:
                break
            item = chosen[0]
            queue.remove(item)
            if share is not None:
                share.served(item.meta.user_id)
            job = by_id[item.meta.request_id]
            done = now + job.service_s
            heapq.heappush(running, done)
            met = slo_met(item.meta, now + job.ttft_s, done)
            out.append(SimOutcome(item.meta.request_id, now, done, met))
        if not running and queue and nxt >= len(pending):
            break  # nothing can ever start (the policy places on no instance)
    return out


def _view(slots: int, busy: int, depth: int) -> ClusterView:
    inst = InstanceView("sim", max_concurrency=slots, in_flight=busy)
    return ClusterView((inst,), Signals(queue_depth=depth, utilisation=busy / slots))


def _always(placement: Placement) -> bool:
    return True
