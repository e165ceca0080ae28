"""Which endpoints of a pool may take what, from the pool snapshot and the ejected set (pure):
the filters in front of every routing strategy.

A pool without General endpoints is served by its Decode endpoints; its Prefill endpoints only
take prefill legs.
"""

from __future__ import annotations

from collections.abc import Collection

from sagellm_router.types import Endpoint, PoolSnapshot, Role


def routable(endpoint: Endpoint, ejected: Collection[str]) -> bool:
    return endpoint.ready and not endpoint.draining and endpoint.url not in ejected


def starting(endpoint: Endpoint) -> bool:
    """Listed in the pool's status but not ready yet (and not on its way out)."""
    return not endpoint.ready and not endpoint.draining


def may_hold(pool: PoolSnapshot) -> bool:
    """Whether a request for ``pool`` may wait in its queue while no endpoint is routable.

    When one of its serving endpoints is starting (it will be routable soon), or when the
    pool can scale from zero (autoscaling with a role at ``minReplicas: 0``): the held request
    is demand the operator's autoscaler sees, and it starts a replica.
    """
    if pool.scale_from_zero:
        return True
    serving = [e for e in pool.endpoints if e.role is not Role.PREFILL]
    return any(starting(e) for e in serving)


def serving_candidates(
    pool: PoolSnapshot, ejected: Collection[str], exclude: Collection[str] = ()
) -> list[Endpoint]:
    """Endpoints of ``pool`` that may take a new whole request."""
    usable = [e for e in pool.endpoints if routable(e, ejected) and e.url not in exclude]
    general = [e for e in usable if e.role is Role.GENERAL]
    return general or [e for e in usable if e.role is Role.DECODE]


def prefill_candidates(
    pool: PoolSnapshot, ejected: Collection[str], exclude: Collection[str] = ()
) -> list[Endpoint]:
    """Prefill endpoints of a disaggregated pool that may take a prefill leg."""
    return [
        e
        for e in pool.endpoints
        if e.role is Role.PREFILL and routable(e, ejected) and e.url not in exclude
    ]
