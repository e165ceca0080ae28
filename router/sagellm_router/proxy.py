"""Forwarding one request upstream: retries before the first byte, then relay.

Connect errors, timeouts before the response starts (for streams: no first event within
``timeouts.first_byte_s``), 5xx statuses and (for streams) a failure before the first body
byte are retried on another endpoint, at most ``retries.max_attempts`` times in all, with
exponential backoff. A non-streaming request is always retried whole: nothing reaches the
client before its answer is complete. Once a stream has sent bytes to the client, a failure is
handled by ``relay``: the stream continues on another engine (mid-stream failover) or ends with
an SSE error event and ``data: [DONE]``. Every failure is reported to
``RouterState.endpoint_failed``, which ejects and counts.
"""

from __future__ import annotations

import asyncio
import logging

from sagellm_router.errors import ApiError
from sagellm_router.exchange import (
    Exchange,
    Opened,
    Retryable,
    Tracked,
    answered,
    count_retry,
    open_attempt,
)
from sagellm_router.relay import Segment, StreamRelay
from sagellm_router.sse import usage_of
from sagellm_router.state import RouterState
from sagellm_router.types import Endpoint, PoolSnapshot
from sagellm_router.upstream import Upstream, UpstreamResponse

__all__ = ["Exchange", "forward"]

log = logging.getLogger(__name__)


async def forward(state: RouterState, session: Upstream, ex: Exchange) -> None:
    """Send ``ex`` upstream (retrying before the first byte) and relay the answer downstream."""
    retries = state.settings.retries
    last: Retryable | None = None
    for attempt in range(retries.max_attempts):
        if attempt:
            await asyncio.sleep(
                min(retries.backoff_max_s, retries.backoff_initial_s * 2 ** (attempt - 1))
            )
        choice = ex.next_endpoint()
        if choice is None:
            break
        pool, endpoint = choice
        try:
            return await _attempt(state, session, ex, pool, endpoint)
        except Retryable as exc:
            last = exc
            count_retry(state, pool.name, endpoint, exc.reason)
    if last is None:
        raise ApiError(
            503, f"no ready endpoint for model {ex.parsed.model!r}; retry later", retry_after=1
        )
    if last.body:
        ex.status = last.status
        headers = {"Content-Type": "application/json", "X-Request-Id": ex.request_id}
        await ex.down.whole(last.status, headers, last.body)
        return
    raise ApiError(502, f"upstream failed after {len(ex.tried)} attempt(s): {last.reason}")


async def _attempt(
    state: RouterState,
    session: Upstream,
    ex: Exchange,
    pool: PoolSnapshot,
    endpoint: Endpoint,
) -> None:
    with Tracked(state, pool.name, endpoint) as slot:
        started = state.clock()
        opened = await open_attempt(state, session, ex, endpoint, ex.raw)
        try:
            answered(state, endpoint, started, slot)
            if opened.body is not None:
                await _buffered(state, ex, opened)
            else:
                first = Segment(opened, pool.name, endpoint)
                await _relay_stream(state, session, ex, opened, first)
        finally:
            await opened.close()


def _response_headers(ex: Exchange, resp: UpstreamResponse) -> dict[str, str]:
    headers = {
        "Content-Type": resp.headers.get("content-type", "application/json"),
        "X-Request-Id": ex.request_id,
        "X-Sagellm-Instance": ex.instance,
    }
    if ex.prefill_instance:
        headers["X-Sagellm-Prefill-Instance"] = ex.prefill_instance
    return headers


async def _buffered(state: RouterState, ex: Exchange, opened: Opened) -> None:
    assert opened.body is not None
    resp = opened.response
    ex.status = ex.status or resp.status
    ex.reached_client(state.clock())
    await ex.down.whole(resp.status, _response_headers(ex, resp), opened.body)
    if resp.status == 200:  # after the answer is on its way: off the latency path
        _count_tokens(state, ex, usage_of(opened.body))


def _count_tokens(state: RouterState, ex: Exchange, usage: dict[str, object] | None) -> None:
    if not usage:
        return
    tokens = state.metrics.tokens
    for key, direction in (("prompt_tokens", "in"), ("completion_tokens", "out")):
        value = usage.get(key)
        if isinstance(value, int) and value > 0:
            state.metrics.child(tokens, ex.parsed.model, direction).inc(value)


async def _relay_stream(
    state: RouterState, session: Upstream, ex: Exchange, opened: Opened, first: Segment
) -> None:
    upstream = opened.response
    ex.status = ex.status or upstream.status
    await ex.down.start(upstream.status, _response_headers(ex, upstream))
    m, clock = state.metrics, state.clock
    ex.reached_client(clock())
    m.child(m.ttft, ex.parsed.model, ex.pool).observe(clock() - ex.started)
    relay = StreamRelay(state, session, ex)
    await relay.run(first)
    _count_tokens(state, ex, relay.scanner.usage)
    await ex.down.end()
