"""Level-based convergence: one operator-wide loop instead of a kopf timer per object.

Every ``resync_seconds`` it takes the pools and instances of the served namespaces (from kopf's
indices), re-runs each reconcile and sets the ``sagellm_operator_{pools,instances}{phase}``
gauges. kopf timers would need a finalizer on every object (one more PATCH and a
conflict-prone watch event per object); a single loop needs none.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from prometheus_client import Gauge

from sagellm_core.api import labels as L
from sagellm_operator.reconcile.accepted import remember_all
from sagellm_operator.reconcile.context import Context
from sagellm_operator.reconcile.instance import reconcile_instance
from sagellm_operator.reconcile.pool import reconcile_pool

Obj = dict[str, Any]
log = logging.getLogger(__name__)
POOL_PHASES = ("Pending", "Progressing", "Ready", "Degraded", "Failed")
INSTANCE_PHASES = ("Pending", "Starting", "Ready", "Draining", "Failed")


def phase_counts(objs: list[Obj], phases: tuple[str, ...]) -> dict[str, int]:
    """Objects per status phase; every known phase is present (0 when none), no status = the
    first phase."""
    counts = Counter((o.get("status") or {}).get("phase") or phases[0] for o in objs)
    return {phase: counts.get(phase, 0) for phase in sorted({*phases, *counts})}


def _set(gauge: Gauge, counts: dict[str, int]) -> None:
    for phase, n in counts.items():
        gauge.labels(phase).set(n)


async def resync_once(ctx: Context) -> None:
    pools = await ctx.lookup.in_scope(L.POOL_PLURAL)
    remember_all(ctx, pools)
    ctx.policies.clear()  # re-apply each pool's NetworkPolicy once per pass (level-based)
    for pool in pools:
        await reconcile_pool(ctx, pool)
    instances = await ctx.lookup.in_scope(L.INSTANCE_PLURAL)
    for inst in instances:
        await reconcile_instance(ctx, inst)
    _set(ctx.metrics.pools, phase_counts(pools, POOL_PHASES))
    _set(ctx.metrics.instances, phase_counts(instances, INSTANCE_PHASES))


async def resync_forever(ctx: Context) -> None:
    while True:
        await asyncio.sleep(ctx.settings.resync_seconds)
        try:
            await resync_once(ctx)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("resync failed; retrying at the next interval")
