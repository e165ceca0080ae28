"""Forwarding one request upstream: retries before the first byte, then relay.

Connect errors, timeouts before the response starts, 5xx statuses and (for streams) a failure
before the first body byte are retried on another endpoint, at most ``retries.max_attempts``
times in all, with exponential backoff. Once bytes have gone to the client nothing is retried;
a stream that breaks ends with an SSE error event and ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Collection
from dataclasses import dataclass, field

from sagellm_router.admission_queue import Ticket
from sagellm_router.downstream import Downstream
from sagellm_router.errors import ApiError, sse_error_event
from sagellm_router.sse import UsageScanner, usage_of
from sagellm_router.state import RouterState
from sagellm_router.types import Endpoint, PoolSnapshot
from sagellm_router.upstream import Upstream, UpstreamError, UpstreamResponse
from sagellm_router.validation import ParsedRequest

log = logging.getLogger(__name__)

#: Picks the (pool, endpoint) for the next attempt, skipping the URLs already tried.
Chooser = Callable[[Collection[str]], "tuple[PoolSnapshot, Endpoint] | None"]


@dataclass(slots=True)
class Exchange:
    """One client request as it moves through the router (for metrics, logs and PD).

    ``raw`` is the body sent upstream (the client's bytes, or the decode-leg body with
    ``kv_transfer_params``); ``choose`` picks each attempt's endpoint.
    """

    down: Downstream
    parsed: ParsedRequest
    raw: bytes
    request_id: str
    override: str | None
    started: float
    choose: Chooser | None = None
    ticket: Ticket | None = None
    pool: str = ""
    instance: str = ""
    prefill_instance: str = ""
    status: int = 0
    tried: set[str] = field(default_factory=set)
    first_byte_s: float | None = None
    itl_total_s: float = 0.0
    itl_count: int = 0

    @property
    def mean_itl_s(self) -> float | None:
        return self.itl_total_s / self.itl_count if self.itl_count else None

    def reached_client(self, now: float) -> None:
        if self.first_byte_s is None:
            self.first_byte_s = now
            if self.ticket is not None:
                self.ticket.first_token()


class Retryable(Exception):
    """An attempt failed before anything reached the client."""

    def __init__(self, reason: str, status: int = 502, body: bytes = b"") -> None:
        super().__init__(reason)
        self.reason, self.status, self.body = reason, status, body


@dataclass(slots=True)
class Opened:
    """A successful attempt: either a buffered body or a live stream plus its first chunk."""

    response: UpstreamResponse
    body: bytes | None = None
    first_chunk: bytes = b""
    chunks: AsyncGenerator[bytes, None] | None = None


async def forward(state: RouterState, session: Upstream, ex: Exchange) -> None:
    """Send ``ex`` upstream (retrying before the first byte) and relay the answer downstream."""
    assert ex.choose is not None
    retries = state.settings.retries
    last: Retryable | None = None
    for attempt in range(retries.max_attempts):
        if attempt:
            await asyncio.sleep(
                min(retries.backoff_max_s, retries.backoff_initial_s * 2 ** (attempt - 1))
            )
        choice = ex.choose(ex.tried)
        if choice is None:
            break
        pool, endpoint = choice
        ex.tried.add(endpoint.url)
        if ex.ticket is not None:
            ex.ticket.rebind(endpoint.url)
        ex.pool, ex.instance = pool.name, endpoint.instance
        try:
            return await _attempt(state, session, ex, pool, endpoint)
        except Retryable as exc:
            last = exc
            _count_failure(state, pool, endpoint, exc.reason)
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


def _count_failure(state: RouterState, pool: PoolSnapshot, endpoint: Endpoint, reason: str) -> None:
    state.metrics.retries.labels(pool.name, endpoint.instance, reason).inc()
    if state.health.failure(endpoint.url):
        state.metrics.ejections.labels(pool.name, endpoint.instance).inc()
        state.update_endpoint_gauges()
        log.warning("endpoint ejected after consecutive failures", extra={"endpoint": endpoint.url})


async def _attempt(
    state: RouterState,
    session: Upstream,
    ex: Exchange,
    pool: PoolSnapshot,
    endpoint: Endpoint,
) -> None:
    tracker, gauge = (
        state.tracker,
        state.metrics.child(state.metrics.in_flight, pool.name, endpoint.instance),
    )
    started = tracker.start(endpoint.url)
    gauge.inc()
    failed = True
    opened: Opened | None = None
    try:
        opened = await _open(state, session, ex, endpoint)
        state.health.success(endpoint.url)
        tracker.first_byte(endpoint.url, started)
        failed = False
        if opened.body is not None:
            await _buffered(state, ex, opened)
        else:
            await _relay_stream(state, ex, opened, endpoint)
    finally:
        if opened is not None:
            if opened.chunks is not None:
                await opened.chunks.aclose()
            opened.response.close()
        tracker.finish(endpoint.url, failed=failed)
        gauge.dec()


async def _open(state: RouterState, pool: Upstream, ex: Exchange, endpoint: Endpoint) -> Opened:
    headers = {"Content-Type": "application/json", "X-Request-Id": ex.request_id}
    try:
        resp = await pool.post(endpoint.url, ex.parsed.path, ex.raw, headers)
    except UpstreamError as exc:
        raise Retryable(exc.reason) from exc
    try:
        if resp.status >= 500:
            raise Retryable(f"status_{resp.status}", resp.status, await resp.read())
        if resp.content_type != "text/event-stream":
            return Opened(resp, body=await resp.read())
        chunks = resp.batches()  # events that arrived together go out in one write
        return Opened(resp, first_chunk=await anext(chunks, b""), chunks=chunks)
    except UpstreamError as exc:
        resp.close()
        raise Retryable(exc.reason) from exc
    except Retryable:
        resp.close()
        raise


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
    state: RouterState, ex: Exchange, opened: Opened, endpoint: Endpoint
) -> None:
    upstream = opened.response
    client = ex.down
    ex.status = ex.status or upstream.status
    await client.start(upstream.status, _response_headers(ex, upstream))
    m, clock = state.metrics, state.clock
    labels = (ex.parsed.model, ex.pool)
    ex.reached_client(clock())
    m.child(m.ttft, *labels).observe(clock() - ex.started)
    itl = m.child(m.itl, *labels)
    scanner = UsageScanner()
    assert opened.chunks is not None
    chunk, last, tail = opened.first_chunk, clock(), b""
    deadline = ex.started + state.settings.timeouts.total_s
    while chunk:
        scanner.feed(chunk)
        tail = (tail + chunk)[-16:]
        await client.write(chunk)  # raises if the client left; closing upstream then aborts it
        try:
            chunk = await anext(opened.chunks, b"")
        except UpstreamError as exc:
            await _break_stream(state, ex, client, endpoint, exc.reason)
            break
        now = clock()
        itl.observe(now - last)
        ex.itl_total_s += now - last
        ex.itl_count += 1
        last = now
        if now > deadline and chunk:
            await _break_stream(state, ex, client, endpoint, "total_timeout")
            break
    else:
        if b"[DONE]" not in tail:
            await _break_stream(state, ex, client, endpoint, "truncated")
    _count_tokens(state, ex, scanner.usage)
    await client.end()


async def _break_stream(
    state: RouterState,
    ex: Exchange,
    client: Downstream,
    endpoint: Endpoint,
    reason: str,
) -> None:
    """End a stream that cannot complete: an SSE error event, then ``data: [DONE]``."""
    log.warning("upstream stream broke", extra={"endpoint": endpoint.url, "reason": reason})
    if reason != "total_timeout":
        state.health.failure(endpoint.url)
    ex.status = 502
    message = f"upstream {endpoint.instance} failed mid-stream ({reason}); retry the request"
    await client.write(sse_error_event(502, message))
