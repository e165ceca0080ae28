"""Build the scheduler's ``InstanceView``s from the router's endpoints and load numbers."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sagellm_core.scheduling.view import InstanceView
from sagellm_router.types import Endpoint, Role


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
) -> tuple[InstanceView, ...]:
    """One view per ready, non-draining endpoint that holds a concurrency slot.

    In a disaggregated pool the slot is on the decode instance (prefill instances are not
    listed); ``in_flight`` is the larger of the router's own count and the engine's scraped
    ``running``, as the caller sees it. Views are named by endpoint URL, which is what
    ``Ticket.bind`` takes. An endpoint's own ``max_concurrency``, ``gpus`` and ``tokens_per_s``
    win over the arguments, which are the pool-wide defaults.
    """
    roles = {e.role for e in endpoints}
    slot_role = Role.DECODE if Role.DECODE in roles else Role.GENERAL
    return tuple(
        InstanceView(
            name=e.url,
            max_concurrency=e.max_concurrency or max_concurrency,
            in_flight=round(in_flight(e.url)),
            waiting=round(waiting(e.url)),
            ttft_s=ttft_s(e.url),
            gpus=e.gpus or gpus,
            cost_per_gpu_hour=cost_per_gpu_hour,
            tokens_per_s=e.tokens_per_s or tokens_per_s,
            pool=pool,
        )
        for e in endpoints
        if e.ready and not e.draining and e.role == slot_role
    )
