"""The request pipeline shared by the HTTP app and the embedded ``ControlPlaneManager``.

``handle(state, upstream, job, downstream)``: resolve the pool by model -> request metadata
(400 naming a bad header) -> router-wide cap (429) -> the pool's admission queue (scheduling
policy; 429/503 with Retry-After, 422 over budget) -> PD orchestration for disaggregated pools,
else the routing strategy over the ticket's allowed endpoints -> proxy into ``downstream``.
A cancelled caller (client disconnect, ``cancel_request``) leaves the queue or frees its slot.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from sagellm_core.scheduling.metadata import H_REQUEST_ID, RequestMetadata
from sagellm_core.scheduling.slo import slo_met
from sagellm_router.admission_queue import Rejected, metadata_from_request
from sagellm_router.downstream import Downstream
from sagellm_router.errors import ApiError
from sagellm_router.pd.orchestrator import disaggregated, run_pd
from sagellm_router.pool_runtime import PoolRuntime
from sagellm_router.proxy import Exchange, forward
from sagellm_router.state import RouterState, serving_candidates
from sagellm_router.types import Endpoint, PoolSnapshot
from sagellm_router.upstream import Upstream
from sagellm_router.validation import ParsedRequest, task_of


@dataclass(frozen=True, slots=True)
class Job:
    """A validated request: the parsed body, the bytes to forward and lower-cased headers;
    ``on_admitted`` is called when the admission queue lets it through. ``prefer``: endpoint
    URLs to route to when one of them is allowed and available (the embedded manager's
    parallelism hint); None means no preference."""

    parsed: ParsedRequest
    raw: bytes
    headers: Mapping[str, str]
    on_admitted: Callable[[Exchange], None] | None = None
    prefer: frozenset[str] | None = None


def safe_request_id(given: str | None, new_id: Callable[[], str] = lambda: uuid.uuid4().hex) -> str:
    """The client's request id if it is short printable ASCII, else a fresh one."""
    if given and len(given) <= 128 and given.isascii() and given.isprintable():
        return given.replace(" ", "_")
    return new_id()


def _pools_for(state: RouterState, parsed: ParsedRequest) -> tuple[PoolSnapshot, ...]:
    """The pools serving the request's model with the task its route needs (404 / 400)."""
    pools = state.table.for_model(parsed.model)
    if not pools:
        served = ", ".join(state.table.models()) or "none"
        raise ApiError(
            404, f"model {parsed.model!r} does not exist; served models: {served}", param="model"
        )
    task = task_of(parsed.path)
    fitting = tuple(p for p in pools if p.task == task)
    if not fitting:
        embed = pools[0].task == "embed"
        what = "an embedding model" if embed else "a generative model"
        route = "/v1/embeddings" if embed else "/v1/completions or /v1/chat/completions"
        raise ApiError(
            400,
            f"model {parsed.model!r} is {what} (pool task {pools[0].task!r}) and cannot serve "
            f"{parsed.path}; use {route}",
            param="model",
        )
    return fitting


def _home_pool(state: RouterState, pools: tuple[PoolSnapshot, ...]) -> PoolSnapshot:
    """The first pool (by name) with a candidate; it owns the request's queue."""
    if len(pools) == 1:  # the usual case: no need to look for candidates
        return pools[0]
    for pool in pools:
        if serving_candidates(pool, state.health.ejected):
            return pool
    return pools[0]


def _refuse_if_dead(state: RouterState, pools: tuple[PoolSnapshot, ...]) -> None:
    """503 at once when no pool for the request can serve it now or soon: waiting in the
    queue until its timeout would only delay the same answer."""
    if all(state.dead(p) for p in pools):
        state.metrics.child(state.metrics.rejections, pools[0].name, "no_endpoint").inc()
        raise state.dead_pool_error(", ".join(p.name for p in pools))


def _metadata(state: RouterState, job: Job, runtime: PoolRuntime, rid: str) -> RequestMetadata:
    headers = {**job.headers, H_REQUEST_ID: rid}
    count = state.token_counter(job.parsed.model)
    return metadata_from_request(
        headers, job.parsed.body, runtime.spec, now=state.clock(), count=count
    )


async def handle(state: RouterState, upstream: Upstream, job: Job, down: Downstream) -> Exchange:
    """Serve ``job`` into ``down``; raises ``ApiError`` for answers the caller must render."""
    parsed = job.parsed
    pools = _pools_for(state, parsed)
    rid = safe_request_id(job.headers.get(H_REQUEST_ID), state.new_request_id)
    ex = Exchange(down, parsed, job.raw, rid, job.headers.get("x-routing-strategy"), state.clock())
    pool = _home_pool(state, pools)
    ex.pool, ex.failover = pool.name, pool.scheduling.mid_stream_failover
    runtime = state.runtime(pool)
    state.metrics.child(state.arrivals, pool.name).inc()
    try:
        _refuse_if_dead(state, pools)
        state.strategy_name(pool, ex.override)  # 400 on an unknown override, before queueing
        meta = _metadata(state, job, runtime, rid)
        async with (
            state.admission.admit(parsed, pool),
            runtime.queue.admit(meta) as ticket,
        ):
            ex.ticket = ticket
            if job.on_admitted is not None:
                job.on_admitted(ex)
            await _dispatch(state, upstream, ex, pools, pool, runtime, job.prefer)
    except Rejected as err:
        state.metrics.child(state.metrics.rejections, pool.name, err.kind).inc()
        ex.status = err.status
        raise
    except ApiError as err:
        ex.status = err.status
        raise
    except asyncio.CancelledError:
        ex.status = 499  # client closed the request
        raise
    finally:
        # the chooser's closure holds ex: left set, every request would be a reference cycle
        # that only a (loop-stalling) collection frees
        ex.choose = None
        _observe(state, ex, pool.name)
    return ex


async def _dispatch(
    state: RouterState,
    upstream: Upstream,
    ex: Exchange,
    pools: tuple[PoolSnapshot, ...],
    pool: PoolSnapshot,
    runtime: PoolRuntime,
    prefer: frozenset[str] | None = None,
) -> None:
    # the snapshots taken on arrival may be stale after a wait in the queue (an endpoint that
    # was starting may be ready now)
    pools = tuple(state.table.get(p.name) or p for p in pools)
    pool = state.table.get(pool.name) or pool
    if state.settings.pd.enabled and pool.task == "generate" and disaggregated(pool):
        await run_pd(state, upstream, ex, pool, runtime)
        return
    ordered = (pool, *(p for p in pools if p is not pool))
    allowed: Collection[str] | None = ex.ticket.allowed if ex.ticket else None
    if prefer is not None:
        narrowed = prefer if allowed is None else prefer.intersection(allowed)
        allowed = narrowed or allowed

    def choose(exclude: Collection[str]) -> tuple[PoolSnapshot, Endpoint] | None:
        return state.choose(ex.parsed, ordered, ex.override, exclude, allowed)

    ex.choose = choose
    await state.prepare_pick(ex.parsed, ordered, ex.override, allowed)
    await forward(state, upstream, ex)


def _observe(state: RouterState, ex: Exchange, home: str) -> None:
    """Request metrics, recorded when the request is done (off the latency path)."""
    m = state.metrics
    m.child(m.requests, ex.parsed.model, ex.pool, ex.instance, str(ex.status or 500)).inc()
    m.child(m.e2e, ex.parsed.model, ex.pool).observe(state.clock() - ex.started)
    ticket = ex.ticket
    if ticket is None:
        return
    m.child(m.queue_wait, home, str(ticket.meta.priority)).observe(ticket.waited_s)
    if ex.status == 499:
        return
    met = slo_met(ticket.meta, ticket.first_token_s, state.clock())
    if met is not None:
        outcome = "attained" if met and ex.status == 200 else "violated"
        m.child(m.slo, ex.pool, outcome).inc()
