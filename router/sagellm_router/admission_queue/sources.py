"""Build the scheduler's ``InstanceView``s from the router's endpoints and load numbers."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sagellm_core.scheduling.view import InstanceView
from sagellm_router.types import Endpoint, Role


class ViewCache:
    """Reuses an instance's last ``InstanceView`` while its fields are unchanged (views are
    frozen, so sharing is safe): building one costs more than comparing its fields."""

    def __init__(self) -> None:
        self._last: dict[object, tuple[tuple[object, ...], InstanceView]] = {}

    def get(self, *fields: object) -> InstanceView:
        last = self._last.get(fields[0])
        if last is not None and last[0] == fields:
            return last[1]
        view = InstanceView(*fields)  # type: ignore[arg-type]
        if len(self._last) > 4096:  # endpoints come and go; never grow without bound
            self._last.clear()
        self._last[fields[0]] = (fields, view)
        return view


def instance_views(
    endpoints: Sequence[Endpoint],
    *,
    max_concurrency: int,
    in_flight: Callable[[str], float],
    waiting: Callable[[str], float] = lambda url: 0.0,
    ttft_s: Callable[[str], float | None] = lambda url: None,
    gpus: int = 1,
    cost_per_gpu_hour: float = 0.0,
    tokens_per_s: float | None = None,
    pool: str = "",
    cache: ViewCache | None = None,
) -> tuple[InstanceView, ...]:
    """One view per ready, non-draining endpoint that holds a concurrency slot.

    In a disaggregated pool the slot is on the decode instance (prefill instances are not
    listed); ``in_flight`` is the router's own count plus what other routers had running at the
    last scrape, as the caller sees it. Views are named by endpoint URL, which is what
    ``Ticket.bind`` takes. An endpoint's own ``max_concurrency``, ``gpus`` and ``tokens_per_s``
    win over the arguments, which are the pool-wide defaults. ``cache`` reuses equal views.
    """
    roles = {e.role for e in endpoints}
    slot_role = Role.DECODE if Role.DECODE in roles else Role.GENERAL
    make = cache.get if cache is not None else InstanceView
    return tuple(
        make(
            e.url,
            e.max_concurrency or max_concurrency,
            round(in_flight(e.url)),
            round(waiting(e.url)),
            ttft_s(e.url),
            e.gpus or gpus,
            cost_per_gpu_hour,
            e.tokens_per_s or tokens_per_s,
            pool,
        )
        for e in endpoints
        if e.ready and not e.draining and e.role == slot_role
    )
