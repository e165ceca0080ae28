"""PD orchestration for a pool with Prefill and Decode endpoints.

1. Pick the decode instance among the ticket's allowed Decode endpoints with the decode strategy
   (``pd.decode_routing``, else the pool's). Its likely cached prefix comes from the pool's
   shared prefix index (``routing.prefix_index``), which learns every decode pick.
2. ``uncached = prompt tokens - cached tokens``, both counted by the one token counter of the
   model (``RouterState.token_counter``: core's estimate, or an in-process engine's tokenizer);
   the pool's ``ThresholdTuner`` decides PD or direct.
3. PD: pick a prefill instance (``pd.prefill_routing``), run the prefill leg, send the decode
   leg with the returned ``kv_transfer_params`` and relay its answer. A failed prefill leg (no
   prefill endpoint, connect error, timeout, non-200, no params) falls back to decode-only with
   the client's original body, counted in ``sagellm_router_pd_fallbacks_total``.
4. Direct: the client's body goes to the decode instance, which prefills locally.
Decode-leg failures before the first byte are retried on other Decode endpoints.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence

from sagellm_core.tokens import prompt_tokens
from sagellm_router.pd.legs import decode_body, run_prefill
from sagellm_router.pool_runtime import PoolRuntime
from sagellm_router.proxy import Exchange, forward
from sagellm_router.state import RouterState, prefill_candidates, serving_candidates
from sagellm_router.types import Endpoint, PoolSnapshot, Role
from sagellm_router.upstream import Upstream

log = logging.getLogger(__name__)


def disaggregated(pool: PoolSnapshot) -> bool:
    """Prefill and decode endpoints and no general one (asked for every request: a general
    pool answers at its first general endpoint)."""
    prefill = decode = False
    for endpoint in pool.endpoints:
        role = endpoint.role
        if role is Role.GENERAL:
            return False
        prefill = prefill or role is Role.PREFILL
        decode = decode or role is Role.DECODE
    return prefill and decode


def _pick_decode(
    state: RouterState, ex: Exchange, pool: PoolSnapshot, candidates: Sequence[Endpoint]
) -> tuple[Endpoint, int]:
    """The decode endpoint and how many prompt tokens it likely has cached."""
    assert state.loads is not None
    configured = state.settings.pd.decode_routing
    if ex.override is None and configured:
        name = configured
    else:
        name = state.strategy_name(pool, ex.override)
    strategy = state.strategies.get(pool.name, name)
    index = state.strategies.prefix_index(pool.name)
    text = ex.parsed.prompt_text
    hashes = index.hashes(text)
    cached = {e.url: index.matched_blocks(e.url, hashes) for e in candidates}
    chosen = strategy.pick(ex.parsed, candidates, state.loads)
    index.record(chosen.url, hashes)  # whichever strategy picked
    chars = cached.get(chosen.url, 0) * index.params.block_chars
    return chosen, state.token_counter(ex.parsed.model)(text[:chars]) if chars else 0


async def _prefill(
    state: RouterState, upstream: Upstream, ex: Exchange, pool: PoolSnapshot
) -> bytes | None:
    """Run the prefill leg; the decode-leg body, or None after counting the fallback."""
    assert state.loads is not None
    m = state.metrics
    candidates = prefill_candidates(pool, state.health.ejected)
    if not candidates:
        reason, params = "no_prefill_endpoint", None
    else:
        strategy = state.strategies.get(pool.name, state.settings.pd.prefill_routing)
        endpoint = strategy.pick(ex.parsed, candidates, state.loads)
        started = state.clock()
        params, reason = await run_prefill(state, upstream, pool.name, endpoint, ex)
        m.child(m.pd_leg, pool.name, "prefill").observe(state.clock() - started)
        if params is not None:
            ex.prefill_instance = endpoint.instance
            return decode_body(ex.parsed.body, params)
    m.child(m.pd_fallbacks, pool.name, reason).inc()
    log.warning(
        "prefill leg failed; serving decode-only",
        extra={"pool": pool.name, "reason": reason, "request_id": ex.request_id},
    )
    return None


async def run_pd(
    state: RouterState,
    upstream: Upstream,
    ex: Exchange,
    pool: PoolSnapshot,
    runtime: PoolRuntime,
) -> None:
    """Serve ``ex`` in the disaggregated ``pool`` (see the module docstring)."""
    allowed: Collection[str] | None = ex.ticket.allowed if ex.ticket else None
    candidates = serving_candidates(pool, state.health.ejected)
    if allowed is not None:
        candidates = [e for e in candidates if e.url in allowed] or candidates
    if not candidates:
        ex.choose = lambda exclude: None
        await forward(state, upstream, ex)  # answers 503: no ready endpoint
        return
    decode, cached = _pick_decode(state, ex, pool, candidates)
    count = state.token_counter(ex.parsed.model)
    prompt = ex.ticket.meta.prompt_tokens if ex.ticket else prompt_tokens(ex.parsed.body, count)
    uncached = max(0, prompt - cached)
    dispatched = state.clock()
    path = "direct"
    if runtime.tuner.decide(uncached):
        body = await _prefill(state, upstream, ex, pool)
        if body is not None:
            ex.raw, path = body, "pd"
    m = state.metrics
    m.child(m.pd_requests, pool.name, path).inc()

    def choose(exclude: Collection[str]) -> tuple[PoolSnapshot, Endpoint] | None:
        if decode.url not in exclude and decode.url not in state.health.ejected:
            return pool, decode
        return state.choose(ex.parsed, (pool,), ex.override, exclude, allowed)

    ex.choose = choose
    decode_started = state.clock()
    await forward(state, upstream, ex)
    if ex.first_byte_s is not None:
        m.child(m.pd_leg, pool.name, "decode").observe(ex.first_byte_s - decode_started)
        if ex.status == 200 and ex.parsed.stream:
            ttft = ex.first_byte_s - dispatched
            runtime.tuner.observe(uncached, path == "pd", ttft, ex.mean_itl_s, state.clock())
    m.child(m.pd_threshold, pool.name).set(runtime.tuner.threshold)
