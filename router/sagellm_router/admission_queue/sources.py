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


#: ``url -> (in_flight, waiting, ttft_s)``: an endpoint's load numbers as the caller sees them.
Numbers = Callable[[str], "tuple[float, float, float | None]"]


def instance_views(
    endpoints: Sequence[Endpoint],
    *,
    max_concurrency: int,
    numbers: Numbers,
    gpus: int = 1,
    cost_per_gpu_hour: float = 0.0,
    tokens_per_s: float | None = None,
    pool: str = "",
    cache: ViewCache | None = None,
) -> tuple[InstanceView, ...]:
    """One view per ready, non-draining endpoint that holds a concurrency slot.

    In a disaggregated pool the slot is on the decode instance (prefill instances are not
    listed); ``numbers`` gives in-flight (the router's own count plus what other routers had
    running at the last scrape), waiting and TTFT. Views are named by endpoint URL, which is
    what ``Ticket.bind`` takes. An endpoint's own ``max_concurrency``, ``gpus`` and
    ``tokens_per_s`` win over the arguments, which are the pool-wide defaults. ``cache`` reuses
    equal views.
    """
    make = cache.get if cache is not None else InstanceView
    views = []
    for e in slot_holders(endpoints):
        in_flight, waiting, ttft_s = numbers(e.url)
        views.append(
            make(
                e.url,
                e.max_concurrency or max_concurrency,
                round(in_flight),
                round(waiting),
                ttft_s,
                e.gpus or gpus,
                cost_per_gpu_hour,
                e.tokens_per_s or tokens_per_s,
                pool,
            )
        )
    return tuple(views)


def slot_holders(endpoints: Sequence[Endpoint]) -> list[Endpoint]:
    """Ready, non-draining endpoints of the role that holds the concurrency slot (decode in a
    disaggregated pool, else general)."""
    role = Role.DECODE if any(e.role is Role.DECODE for e in endpoints) else Role.GENERAL
    return [e for e in endpoints if e.ready and not e.draining and e.role is role]


def capacity(
    endpoints: Sequence[Endpoint], *, max_concurrency: int, numbers: Numbers
) -> list[tuple[str, int, int]]:
    """``(url, max_concurrency, in_flight)`` of each endpoint ``instance_views`` would list,
    with the same numbers: what a plain policy's admission needs, without building views."""
    return [
        (e.url, e.max_concurrency or max_concurrency, round(numbers(e.url)[0]))
        for e in slot_holders(endpoints)
    ]
