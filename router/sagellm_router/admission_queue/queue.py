"""The per-pool admission queue (asyncio). It decides WHEN a request proceeds; the router's
routing strategy decides WHICH instance serves it.

Flow: ``async with queue.admit(meta) as ticket`` charges the user's rate limits (429), then
queues the request. Whenever capacity may have changed (arrival, release, ``poke()``,
``tick()``), the active policy ranks the waiting requests and the best one whose placement has a
free slot is granted a ``Ticket`` naming the instances it may use (``ticket.allowed``). The
router filters its candidates to those, lets the routing strategy pick one and calls
``ticket.bind(url)``; the slot is held until the ``async with`` block exits, which wakes the
next request. A full queue answers 429 to its lowest-ranked request (the newcomer under fifo; a
BACKGROUND one when a CRITICAL request arrives under priority) and a request waiting longer than
the queue timeout 503, both with Retry-After; a cancelled waiter (client gone) leaves the queue.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from sagellm_core.scheduling.base import (
    Placement,
    SchedulingPolicy,
    Shed,
    capabilities_of,
    ranked,
    select_next,
)
from sagellm_core.scheduling.fairshare import FairShare
from sagellm_core.scheduling.metadata import RequestMetadata
from sagellm_core.scheduling.ratelimit import UserRateLimiter
from sagellm_core.scheduling.registry import default_policies
from sagellm_core.scheduling.slo import SloWindow, slo_met
from sagellm_core.scheduling.view import ClusterView, InstanceView, QueueItem, Signals
from sagellm_router.admission_queue.config import QueueConfig
from sagellm_router.admission_queue.errors import Rejected
from sagellm_router.admission_queue.stats import QueueStats
from sagellm_router.admission_queue.ticket import Admitted, Ticket

log = logging.getLogger(__name__)
Clock = Callable[[], float]
InstanceSource = Callable[[], Sequence[InstanceView]]
#: ``(name, max_concurrency, in_flight)`` per instance: the instance views' slot numbers alone.
CapacitySource = Callable[[], Iterable[tuple[str, int, int]]]


_BASE_REASON = Placement(()).reason
_NO_VIEW = ClusterView()  # what a policy that does not use the view is ranked against
#: The next admission: the item, the instances it may use and why.
Choice = tuple[QueueItem, tuple[str, ...], str]


@dataclass(slots=True)
class _Waiter:
    item: QueueItem
    future: asyncio.Future[Ticket]


class AdmissionQueue:
    def __init__(
        self,
        pool: str,
        config: QueueConfig,
        instances: InstanceSource,
        *,
        clock: Clock,
        policies: Mapping[str, SchedulingPolicy] | None = None,
        capacity: CapacitySource | None = None,
    ) -> None:
        """``capacity`` (optional) must agree with ``instances``; it lets a policy that does
        not use the view (``Capabilities.uses_view``) admit without building instance views."""
        self.pool = pool
        self._capacity = capacity
        self.config = config
        self._instances = instances
        self._clock = clock
        self._policies = dict(policies or default_policies(config.policies, now=clock()))
        self._policy = self._lookup(config.policy)
        self._caps = capabilities_of(self._policy)
        self._waiters: dict[int, _Waiter] = {}
        self._seq = itertools.count()
        self._bound: Counter[str] = Counter()
        self._unbound = 0
        self._fair = FairShare()
        self._limiter = UserRateLimiter(config.requests_per_minute, config.tokens_per_minute)
        self._slo = SloWindow(config.slo_window_s)
        self._service_s = config.default_service_s
        self.stats = QueueStats()

    # -- policy -----------------------------------------------------------------------------
    def _lookup(self, name: str) -> SchedulingPolicy:
        policy = self._policies.get(name)
        if policy is None:
            known = ", ".join(sorted(self._policies))
            raise ValueError(f"unknown scheduling policy {name!r}; known: {known}")
        return policy

    @property
    def policy(self) -> SchedulingPolicy:
        return self._policy

    def set_policy(self, name: str) -> None:
        """Switch the active policy at runtime; queued requests are re-ranked at once."""
        self._policy = self._lookup(name)
        self._caps = capabilities_of(self._policy)
        log.info("scheduling policy switched", extra={"pool": self.pool, "policy": name})
        self.poke()

    # -- admission --------------------------------------------------------------------------
    def admit(self, meta: RequestMetadata) -> Admitted:
        """``async with queue.admit(meta) as ticket``: wait for a slot; raises ``Rejected``
        (429/503/422). Releases the slot on exit."""
        return Admitted(self, meta)

    async def _acquire(self, meta: RequestMetadata) -> Ticket:
        now = self._clock()
        limiter = self._limiter  # the prompt is counted only for a token limit (PromptTokens)
        tokens = meta.expected_tokens if limiter.tpm is not None else 0
        decision = limiter.check(meta.user_id, tokens, now)
        if not decision.allowed:
            raise self._reject(429, decision.reason, decision.retry_after_s, "rate_limited")
        item = QueueItem(meta, next(self._seq), now)
        if not self._waiters and self._by_slots:  # nobody to rank, shed or observe: no future
            chosen = self._next([item], None, now)
            if chosen is not None:
                return self._issue(*chosen, now)
        future: asyncio.Future[Ticket] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(item, future)
        self._waiters[waiter.item.seq] = waiter
        self.poke()
        if len(self._waiters) > self.config.max_queue_length:
            self._evict_worst()
        if future.done():  # granted (or refused) at once: no timeout to arm
            return future.result()
        try:
            async with asyncio.timeout(self.config.queue_timeout_s):
                return await waiter.future
        except TimeoutError:
            self._abandon(waiter)
            raise self._timeout_error(waiter) from None
        except asyncio.CancelledError:
            self._abandon(waiter)
            self.stats.cancelled += 1
            raise

    def _evict_worst(self) -> None:
        """Over the queue limit: the lowest-ranked waiter (often the newcomer) gets a 429."""
        now = self._clock()
        items = [w.item for w in self._waiters.values()]
        if not self._caps.arrival_order:
            items = ranked(self._policy, items, self.view(now), now, self._fair)
        worst = items[-1]
        waiter = self._waiters.pop(worst.seq)
        reason = f"pool {self.pool!r} queue is full ({self.config.max_queue_length} waiting)"
        waiter.future.set_exception(self._reject(429, reason, self.retry_after_s(), "queue_full"))

    def _abandon(self, waiter: _Waiter) -> None:
        """The waiter gave up (cancelled or timed out): leave the queue or free its grant."""
        if self._waiters.pop(waiter.item.seq, None) is not None:
            return
        fut = waiter.future
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            self._release(fut.result(), failed=False, record=False)

    def _timeout_error(self, waiter: _Waiter) -> Rejected:
        waited = waiter.item.waited_s(self._clock())
        reason = (
            f"request waited {waited:.1f} s in pool {self.pool!r} queue, over the "
            f"{self.config.queue_timeout_s:g} s queue timeout"
        )
        return self._reject(503, reason, self.retry_after_s(), "queue_timeout")

    def _reject(self, status: int, reason: str, retry: float | None, kind: str) -> Rejected:
        self.stats.rejected[kind] += 1
        log.info("request rejected", extra={"pool": self.pool, "kind": kind, "reason": reason})
        return Rejected(status, reason, retry, kind=kind)

    def reject_waiting(self, reason: str, retry_after_s: float, kind: str) -> int:
        """Answer every waiting request with 503 now (the pool has nothing left to serve it);
        returns how many."""
        waiters, self._waiters = self._waiters, {}
        for waiter in waiters.values():
            if not waiter.future.done():
                waiter.future.set_exception(self._reject(503, reason, retry_after_s, kind))
        return len(waiters)

    # -- dispatch ---------------------------------------------------------------------------
    def poke(self) -> None:
        """Re-evaluate the queue now (an arrival, a release, capacity or load changed): the one
        admission route, doing only what the policy's ``Capabilities`` ask for."""
        now, caps = self._clock(), self._caps
        if self._waiters:
            for seq in [s for s, w in self._waiters.items() if w.future.done()]:
                del self._waiters[seq]  # cancelled; its task has not run its cleanup yet
            self._expire(now)
        elif not caps.observes:
            return  # idle and the policy keeps no state: nothing to shed, grant or observe
        view = self._decision_view(now)
        if view is not None:
            if caps.observes:
                self._policy.observe(view, now)  # also when idle: adaptive follows the signals
            if caps.uses_view:
                self._shed(view, now)
        while self._waiters:
            chosen = self._next([w.item for w in self._waiters.values()], view, now)
            if chosen is None:
                return
            item, allowed, reason = chosen
            self._waiters.pop(item.seq).future.set_result(self._issue(item, allowed, reason, now))
            if self._waiters and view is not None:
                view = self.view(now)

    @property
    def _by_slots(self) -> bool:
        """Whether the slot numbers alone decide: a policy that neither observes nor uses the
        view (so never sheds), and a capacity source to read the numbers from."""
        caps = self._caps
        return not (caps.observes or caps.uses_view) and self._capacity is not None

    def _decision_view(self, now: float) -> ClusterView | None:
        """The instance views, or None when the slot numbers alone decide."""
        return None if self._by_slots else self.view(now)

    def _next(self, items: list[QueueItem], view: ClusterView | None, now: float) -> Choice | None:
        """Which of ``items`` (in arrival order) to admit now, its allowed instances and why
        (None: they must wait). The one decision, for a newcomer as for waiters."""
        in_order = self._caps.arrival_order or len(items) == 1
        if not self._caps.uses_view:  # every instance, never shed: the first may go if any fits
            allowed, free = self._free_slots(view)
            if free <= self._unbound:
                return None
            first = (
                items[0] if in_order else ranked(self._policy, items, _NO_VIEW, now, self._fair)[0]
            )
            return first, allowed, _BASE_REASON
        assert view is not None
        fits = self._fits(view)
        found = select_next(self._policy, items, view, now, fits, self._fair, in_order=in_order)
        if found is None:
            return None
        item, placement = found
        open_ = {i.name for i in view.instances if i.free_slots > 0}
        return item, tuple(n for n in placement.instances if n in open_), placement.reason

    def _free_slots(self, view: ClusterView | None) -> tuple[tuple[str, ...], int]:
        """Instances with a free slot and the free slots in all, from the views or else from
        the capacity source (held slots overlaid the same way as in ``view``)."""
        allowed, total = [], 0
        if view is not None:
            for i in view.instances:
                if (free := i.free_slots) > 0:
                    allowed.append(i.name)
                    total += free
            return tuple(allowed), total
        assert self._capacity is not None
        bound = self._bound
        for name, slots, busy in self._capacity():  # the admission hot path: no views
            held = bound.get(name, 0)
            if (free := slots - (held if held > busy else busy)) > 0:
                allowed.append(name)
                total += free
        return tuple(allowed), total

    tick = poke

    async def run(self, interval_s: float = 0.25) -> None:
        """Re-evaluate every ``interval_s`` so capacity freed outside the router (scraped load,
        new endpoints) is used and ticked timeouts fire; run it as a background task."""
        while True:
            self.poke()
            await asyncio.sleep(interval_s)

    def _expire(self, now: float) -> None:
        limit = self.config.queue_timeout_s
        for waiter in [w for w in self._waiters.values() if w.item.waited_s(now) >= limit]:
            del self._waiters[waiter.item.seq]
            waiter.future.set_exception(self._timeout_error(waiter))

    def _shed(self, view: ClusterView, now: float) -> None:
        for waiter in list(self._waiters.values()):
            shed: Shed | None = self._policy.should_shed(waiter.item, view, now)
            if shed is None:
                continue
            del self._waiters[waiter.item.seq]
            if shed.permanent:
                error = self._reject(422, shed.reason, None, "over_budget")
            else:
                error = self._reject(503, shed.reason, self.retry_after_s(), "shed")
            waiter.future.set_exception(error)

    def _fits(self, view: ClusterView) -> Callable[[Placement], bool]:
        free = {i.name: i.free_slots for i in view.instances}
        return lambda p: sum(free.get(n, 0) for n in p.instances) > self._unbound

    def _issue(self, item: QueueItem, allowed: tuple[str, ...], reason: str, now: float) -> Ticket:
        self._fair.served(item.meta.user_id)
        self._unbound += 1
        waited = item.waited_s(now)
        self.stats.admitted += 1
        self.stats.waited(str(item.meta.priority), waited)
        return Ticket(
            item.meta, allowed, reason, now, waited,
            _clock=self._clock, _on_bind=self._on_bind,
        )  # fmt: skip

    def _on_bind(self, ticket: Ticket, instance: str) -> None:
        if ticket.instance is None:
            self._unbound -= 1
        else:
            self._unhold(ticket.instance)
        self._bound[instance] += 1

    def _unhold(self, instance: str) -> None:
        self._bound[instance] -= 1
        if self._bound[instance] <= 0:
            del self._bound[instance]

    def _release(self, ticket: Ticket, *, failed: bool, record: bool = True) -> None:
        now = self._clock()
        if ticket.instance is None:
            self._unbound -= 1
        else:
            self._unhold(ticket.instance)
        if record:
            self.stats.completed += 1
            self._service_s += 0.2 * ((now - ticket.admitted_s) - self._service_s)
            met = slo_met(ticket.meta, ticket.first_token_s, now)
            if met is not None and (failed or not self._cancelled_now()):
                self._slo.record(met and not failed, now)
        self.poke()

    @staticmethod
    def _cancelled_now() -> bool:
        task = asyncio.current_task()
        return task is not None and task.cancelling() > 0

    # -- views and numbers ------------------------------------------------------------------
    def view(self, now: float, queued: int | None = None) -> ClusterView:
        """Instances with the router's own held slots overlaid, and the pool's signals
        (``queued``: the queue depth to report, if not the number of waiters)."""
        instances = tuple(self._instances())  # no copy when it is a tuple already
        if bound := self._bound:
            instances = tuple(
                i if bound.get(i.name, 0) <= i.in_flight else replace(i, in_flight=bound[i.name])
                for i in instances
            )
        slots, busy = 0, self._unbound
        for i in instances:
            slots += i.max_concurrency
            busy += i.in_flight if i.in_flight < i.max_concurrency else i.max_concurrency
        signals = Signals(
            queue_depth=len(self._waiters) if queued is None else queued,
            slo_attainment=self._slo.attainment(now),
            utilisation=min(1.0, busy / slots) if slots else 1.0,
        )
        return ClusterView(instances, signals)

    def retry_after_s(self) -> float:
        """A Retry-After estimate: time for the current queue to drain, at least 1 s."""
        slots = sum(i.max_concurrency for i in self._instances()) or 1
        return max(1.0, (len(self._waiters) + 1) * self._service_s / slots)

    @property
    def queued(self) -> int:
        return len(self._waiters)

    @property
    def active(self) -> int:
        return self._unbound + sum(self._bound.values())

    def snapshot(self) -> dict[str, object]:
        """Stats for /metrics and debugging: queue, slots, waits, SLOs, active policy."""
        status = getattr(self._policy, "status", None)
        return {
            "pool": self.pool,
            "policy": self._policy.name,
            "policy_status": status() if callable(status) else None,
            "queued": self.queued,
            "active": self.active,
            "admitted": self.stats.admitted,
            "completed": self.stats.completed,
            "cancelled": self.stats.cancelled,
            "rejected": dict(self.stats.rejected),
            "waits": {p: w.as_dict() for p, w in self.stats.waits.items()},
            "slo_attained": self._slo.attained,
            "slo_violated": self._slo.violated,
        }
