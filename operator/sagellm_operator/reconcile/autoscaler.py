"""The built-in autoscaler loop: every ``autoscaler.interval_seconds`` read the demand of every
router replica (found by label, or fixed URLs), then for each pool with
``spec.autoscaling.enabled`` decide each owned role (``autoscale_step``), write the new
``spec.roles.<role>.replicas`` (the pool reconcile then creates instances, or drains them:
scale-in always goes through the zero-loss drain), post an Event per change and record the
decision in ``status.autoscaling``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sagellm_core.api import labels as L
from sagellm_core.demand import PoolDemand
from sagellm_operator.reconcile.autoscale_step import (
    RoleChange,
    RoleMemory,
    autoscaling_of,
    step,
)
from sagellm_operator.reconcile.context import Context, iso
from sagellm_operator.routers import find_routers, read_demand

Obj = dict[str, Any]
log = logging.getLogger(__name__)
MemoryBook = dict[tuple[str, str], dict[str, RoleMemory]]


async def _engine_loads(ctx: Context, pool: Obj) -> dict[str, float]:
    """Running + waiting requests per role from the engines' /metrics (the fallback source)."""
    eps = [e for e in (pool.get("status") or {}).get("endpoints") or [] if e.get("ready")]
    loads = await asyncio.gather(*(ctx.engine_load(e["url"]) for e in eps))
    out: dict[str, float] = {}
    for ep, load in zip(eps, loads, strict=True):
        if load is not None:
            role = str(ep["role"]).lower()
            out[role] = out.get(role, 0.0) + load
    return out


async def _apply(ctx: Context, pool: Obj, change: RoleChange) -> None:
    meta = pool["metadata"]
    patch = {"spec": {"roles": {change.role: {"replicas": change.decision.replicas}}}}
    await ctx.kube.patch(L.POOL_PLURAL, meta["namespace"], meta["name"], patch)
    ctx.metrics.decisions.labels("pool", "autoscale").inc()
    if change.overridden:
        msg = (f"spec.roles.{change.role}.replicas {change.current} was set outside the "
               "autoscaler, which owns it while spec.autoscaling is enabled")  # fmt: skip
        ctx.events.post(pool, "Warning", "ReplicasOverridden", msg)
    msg = f"{change.role}: {change.decision.reason} (from {change.source})"
    ctx.events.post(pool, "Normal", change.event_reason, msg)


async def autoscale_pool(
    ctx: Context, pool: Obj, demand: dict[str, PoolDemand], book: MemoryBook
) -> None:
    spec = autoscaling_of(pool)
    meta = pool["metadata"]
    key = (meta["namespace"], meta["name"])
    if spec is None or (pool.get("status") or {}).get("phase") == "Failed":
        book.pop(key, None)
        return
    mine = demand.get(f"{key[0]}/{key[1]}")
    engines = None if mine is not None and mine.routers else await _engine_loads(ctx, pool)
    now = ctx.clock()
    result = step(pool, spec, mine, engines, book.setdefault(key, {}), now.timestamp(), iso(now))
    for change in result.changes:
        await _apply(ctx, pool, change)
    old = ((pool.get("status") or {}).get("autoscaling") or {}).get("roles") or []
    if [_timeless(r) for r in old] != [_timeless(r) for r in result.status]:
        status = {"autoscaling": {"roles": result.status}}
        await ctx.kube.patch(L.POOL_PLURAL, key[0], key[1], {"status": status}, True)


def _timeless(entry: Obj) -> Obj:
    """A status entry without its decision time (written only when something else changed)."""
    return {k: v for k, v in entry.items() if k != "lastDecisionTime"}


async def autoscale_once(ctx: Context, book: MemoryBook) -> None:
    pools = [p for p in await ctx.lookup.in_scope(L.POOL_PLURAL) if autoscaling_of(p)]
    if not pools:
        book.clear()
        return
    demand = await read_demand(await find_routers(ctx))
    for pool in pools:
        await autoscale_pool(ctx, pool, demand, book)


async def autoscale_forever(ctx: Context) -> None:
    book: MemoryBook = {}
    while True:
        await asyncio.sleep(ctx.settings.autoscaler.interval_seconds)
        try:
            await autoscale_once(ctx, book)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("autoscale pass failed; retrying at the next interval")
