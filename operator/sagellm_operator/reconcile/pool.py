"""InferencePool reconcile: validate → plan per role → converge instances → write status."""

from __future__ import annotations

import asyncio
from typing import Any

from sagellm_core.api import InferencePoolSpec, Role
from sagellm_core.api import labels as L
from sagellm_core.planner import plan_pool
from sagellm_core.validation import operator_problems, parse_pool
from sagellm_core.vllm_args import publishes_kv_events
from sagellm_operator.builders.args import instance_args
from sagellm_operator.builders.hashing import spec_hash
from sagellm_operator.builders.instance import build_instance
from sagellm_operator.builders.limits import limit_errors
from sagellm_operator.builders.netpol import build_network_policy
from sagellm_operator.reconcile.accepted import accepted_condition, newly_rejected
from sagellm_operator.reconcile.context import Context, iso
from sagellm_operator.reconcile.kopftools import owned
from sagellm_operator.reconcile.rollout import (
    Actions,
    DrainTiming,
    IdleReads,
    count_read,
    decide,
    discovery_end,
    drain_started,
    draining,
)
from sagellm_operator.reconcile.slots import held_by_index, kept_indices
from sagellm_operator.reconcile.status import invalid_status, pool_status, scale_status
from sagellm_operator.routers import draining_everywhere, find_routers

Obj = dict[str, Any]


async def reconcile_pool_named(ctx: Context, ns: str, name: str) -> None:
    """Reconcile the pool as it is now (for triggers that carry only its name)."""
    pool = await ctx.kube.get(L.POOL_PLURAL, ns, name)
    if pool is not None:
        await reconcile_pool(ctx, pool)


async def reconcile_pool(ctx: Context, pool: Obj) -> None:
    if pool["metadata"].get("deletionTimestamp"):
        return
    async with ctx.reconciling("pool", pool):
        current = await newest_copy(ctx, pool)
        if current is not None:
            await _reconcile(ctx, current)


async def newest_copy(ctx: Context, pool: Obj) -> Obj | None:
    """``pool``, or the API's copy when a newer spec was reconciled while this one waited for
    the lock (a resync pass holds copies taken before it started); None once it is deleted."""
    meta = pool["metadata"]
    key, seen = (meta["namespace"], meta["name"]), (meta["uid"], meta.get("generation", 0))
    last = ctx.generations.get(key)
    if last is not None and last[0] == seen[0] and last[1] > seen[1]:
        fresh = await ctx.kube.get(L.POOL_PLURAL, *key)
        if fresh is None or fresh["metadata"].get("deletionTimestamp"):
            return None
        pool, meta = fresh, fresh["metadata"]
    ctx.generations[key] = (meta["uid"], meta.get("generation", 0))
    return pool


def _user_view(pool: Obj) -> Obj:
    """The part of the object the user wrote (status and server metadata left out)."""
    meta = {k: pool["metadata"][k] for k in ("name", "namespace") if k in pool["metadata"]}
    return {"apiVersion": pool["apiVersion"], "kind": pool["kind"], "metadata": meta,
            "spec": pool.get("spec", {})}  # fmt: skip


def _validate_and_plan(ctx: Context, pool: Obj) -> tuple[list[str], Any, Any]:
    key = (pool["metadata"]["uid"], pool["metadata"].get("generation", 0))
    if key not in ctx.plans:
        problems = operator_problems(_user_view(pool))
        if problems:
            ctx.plans[key] = (problems, None, None)
        else:
            spec = parse_pool(_user_view(pool)).spec
            planned = plan_pool(spec)
            errors = list(planned.errors) or limit_errors(
                pool["metadata"]["name"], planned, ctx.settings.max_nodes_per_instance
            )
            ctx.plans[key] = (errors, spec, planned)
    result: tuple[list[str], Any, Any] = ctx.plans[key]
    return result


async def _reconcile(ctx: Context, pool: Obj) -> None:
    accepted = accepted_condition(pool, ctx.claims.values(), iso(ctx.clock()))
    if newly_rejected(pool, accepted):
        ctx.events.post(pool, "Warning", accepted["reason"], accepted["message"])
    problems, spec, planned = _validate_and_plan(ctx, pool)
    if problems:
        await _invalid(ctx, pool, L.REASON_INVALID_SPEC, problems, accepted)
        return
    await _isolate(ctx, pool, spec)
    timeout = spec.lifecycle.drain_timeout_seconds
    timeout = ctx.settings.drain_timeout_seconds if timeout is None else timeout
    ns, name = pool["metadata"]["namespace"], pool["metadata"]["name"]
    found = await ctx.kube.list_objects(L.INSTANCE_PLURAL, ns, f"{L.LABEL_POOL}={name}")
    existing = {i["metadata"]["name"]: i for i in found}
    roles = list(planned.plans)
    kept = await asyncio.gather(
        *(role_indices(ctx, spec.replicas_for(r), r, existing) for r in roles)
    )
    indices = dict(zip(roles, kept, strict=True))
    desired = _desired(ctx, pool, spec, planned, timeout, indices)
    timing = DrainTiming(
        ctx.settings.pods.discovery_bound_seconds, timeout, ctx.settings.drain_poll_seconds
    )
    reads = _kept(ctx.idle_reads, (ns, name), existing)
    acks = _kept(ctx.drain_acks, (ns, name), existing)
    acts = decide(desired, existing, ctx.clock(), timing, reads, acks)
    if acts.confirm:
        await _confirm(ctx, f"{ns}/{name}", acks, acts.confirm)
        acts = decide(desired, existing, ctx.clock(), timing, reads, acks)
    if acts.probe:
        await _read_loads(ctx, reads, acks, [existing[n] for n in acts.probe], timing)
        acts = decide(desired, existing, ctx.clock(), timing, reads, acks)
    await _apply(ctx, pool, acts, existing)
    if acts.recheck_s is not None:
        job = lambda: reconcile_pool_named(ctx, ns, name)  # noqa: E731
        ctx.children.trigger(("pool-recheck", ns, name), job, acts.recheck_s)
    counts = {str(role): spec.replicas_for(role) for role in planned.plans}
    plans = [p.to_wire() for p in planned.status_plans()]
    remaining = [i for i in found if i["metadata"]["name"] not in acts.delete]
    status = pool_status(pool, spec, counts, plans, remaining, acts.busy, iso(ctx.clock()))
    status["conditions"].append(accepted)
    status["maxGPUs"] = planned.max_gpus(spec)
    status["scale"] = scale_status(pool, status["roles"])
    await _write(ctx, pool, status)


async def _isolate(ctx: Context, pool: Obj, spec: InferencePoolSpec) -> None:
    """Apply the pool's engine NetworkPolicy, once per spec and resync pass (before any pod)."""
    peers = ctx.settings.engine_ingress_peers
    if peers is None:
        return
    events = ctx.settings.kv_event_peers if ctx.settings.kv_event_peers is not None else peers
    events = events if publishes_kv_events(spec) else ()
    policy = build_network_policy(pool, peers, ctx.settings.pods.port, events)
    owned(policy, pool)
    key = (pool["metadata"]["uid"], spec_hash(policy["spec"]))
    if key not in ctx.policies:
        await ctx.kube.apply_network_policy(policy)
        ctx.policies.add(key)


async def role_indices(
    ctx: Context, replicas: int, role: Role, existing: dict[str, Obj]
) -> list[int]:
    """The indices ``role`` keeps; a scale-in reads the Ready engines first, to drop the least
    busy (only when the instances that are not Ready do not cover the surplus)."""
    mine = [i for i in existing.values()
            if i["metadata"]["labels"].get(L.LABEL_ROLE) == L.role_label_value(role)]  # fmt: skip
    serving = [i for i in mine if not draining(i) and not i["metadata"].get("deletionTimestamp")]
    taken = {int(i["spec"]["index"]) for i in mine} - {int(i["spec"]["index"]) for i in serving}
    held = held_by_index(serving, {})
    if replicas > 0 and sum(h.ready for h in held.values()) > replicas:
        readable = [i for i in serving if (i.get("status") or {}).get("ready")
                    and (i.get("status") or {}).get("url")]  # fmt: skip
        read = await asyncio.gather(*(ctx.engine_load(i["status"]["url"]) for i in readable))
        loads = {i["metadata"]["name"]: v for i, v in zip(readable, read, strict=True)}
        held = held_by_index(serving, loads)
    return kept_indices(replicas, held, taken, L.MAX_ROLE_REPLICAS)


def _desired(ctx: Context, pool: Obj, spec: Any, planned: Any, timeout: int,
             indices: dict[Role, list[int]]) -> dict[str, Obj]:  # fmt: skip
    desired: dict[str, Obj] = {}
    for role, plan in planned.plans.items():
        args = instance_args(spec, role, plan, ctx.settings.pods.port)
        for index in indices[role]:
            obj = build_instance(pool, spec, role, plan, index, args, timeout)
            owned(obj, pool)
            desired[obj["metadata"]["name"]] = obj
    return desired


def _kept(book: dict[tuple[str, str], dict[str, Any]], key: tuple[str, str],
          existing: dict[str, Obj]) -> dict[str, Any]:  # fmt: skip
    """The pool's entry of a per-instance book, without the instances that are gone."""
    entries = book.setdefault(key, {})
    for name in [n for n in entries if n not in existing]:
        del entries[name]
    return entries


async def _confirm(ctx: Context, pool: str, acks: dict[str, Any], names: list[str]) -> None:
    """Record the instances every router replica now lists as draining."""
    seen = await draining_everywhere(await find_routers(ctx), pool)
    now = ctx.clock()
    for name in names:
        if name in seen and name not in acks:
            acks[name] = now


async def _read_loads(
    ctx: Context, reads: dict[str, IdleReads], acks: dict[str, Any], insts: list[Obj],
    timing: DrainTiming,
) -> None:  # fmt: skip
    """Read each engine's running + waiting requests; count consecutive idle reads."""
    loads = await asyncio.gather(*(ctx.engine_load(i["status"]["url"]) for i in insts))
    now = ctx.clock()
    for inst, load in zip(insts, loads, strict=True):
        name = inst["metadata"]["name"]
        started = drain_started(inst)
        if started is None:  # not reached: decide() probes only stamped drains
            continue
        bound = discovery_end(started, timing, acks.get(name))
        reads[name] = count_read(reads.get(name), load, now, bound)


async def _apply(ctx: Context, pool: Obj, acts: Actions, existing: dict[str, Obj]) -> None:
    ns = pool["metadata"]["namespace"]
    for obj in acts.create:
        if await ctx.kube.create(L.INSTANCE_PLURAL, obj):
            await _decided(ctx, pool, "create", f"created instance {obj['metadata']['name']}")
    for name in acts.drain:
        # Full precision: D is counted from this stamp.
        notes = {L.ANNOTATION_DRAINING: "true", L.ANNOTATION_DRAIN_STARTED: ctx.clock().isoformat()}
        await ctx.kube.patch(L.INSTANCE_PLURAL, ns, name, {"metadata": {"annotations": notes}})
        meta = existing[name]["metadata"]
        meta["annotations"] = {**(meta.get("annotations") or {}), **notes}  # status shows it now
        await _decided(ctx, pool, "drain", f"draining instance {name} before removing it")
    for name in acts.delete:
        await ctx.kube.delete(L.INSTANCE_PLURAL, ns, name)
        if name in acts.timed_out:
            msg = f"deleted instance {name}: drain timeout passed before its engine was idle"
            await _decided(ctx, pool, "delete", msg, "Warning")
        else:
            await _decided(ctx, pool, "delete", f"deleted drained instance {name}")


async def _decided(
    ctx: Context, pool: Obj, action: str, message: str, kind: str = "Normal"
) -> None:
    ctx.metrics.decisions.labels("pool", action).inc()
    reason = {"create": "CreatedInstance", "drain": "Draining", "delete": "DeletedInstance"}
    ctx.events.post(pool, kind, reason[action] if kind == "Normal" else "DrainTimeout", message)


async def _invalid(
    ctx: Context, pool: Obj, reason: str, problems: list[str], accepted: Obj
) -> None:
    status = invalid_status(pool, reason, problems, iso(ctx.clock()))
    status["conditions"].append(accepted)
    old = pool.get("status") or {}
    if (
        old.get("observedGeneration") != status["observedGeneration"]
        or old.get("phase") != "Failed"
    ):
        ctx.events.post(pool, "Warning", reason, "; ".join(problems))
    await _write(ctx, pool, status)


async def _write(ctx: Context, pool: Obj, status: Obj) -> None:
    old = pool.get("status") or {}
    if all(old.get(k) == v for k, v in status.items()):
        return
    meta = pool["metadata"]
    await ctx.kube.patch(L.POOL_PLURAL, meta["namespace"], meta["name"], {"status": status}, True)
