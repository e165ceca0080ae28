"""One client request in flight, and opening one attempt of it on one engine.

``open_attempt`` sends a body to an endpoint and returns either a buffered answer or a live
stream with its first chunk. Anything that fails before a byte reaches the client raises
``Retryable`` with a short reason: ``connect_error``, ``disconnected``, ``timeout``,
``status_5xx``, ``first_byte_timeout`` (a stream whose first event did not come within
``timeouts.first_byte_s``) or ``ejected`` (the endpoint was ejected as hung while this request
waited for its answer).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Collection
from dataclasses import dataclass, field

from sagellm_router.admission_queue import Ticket
from sagellm_router.downstream import Downstream
from sagellm_router.state import RouterState
from sagellm_router.types import Endpoint, PoolSnapshot
from sagellm_router.upstream import Upstream, UpstreamError, UpstreamResponse
from sagellm_router.validation import ParsedRequest
from sagellm_router.waits import Released

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
    failover: bool = True

    @property
    def mean_itl_s(self) -> float | None:
        return self.itl_total_s / self.itl_count if self.itl_count else None

    def reached_client(self, now: float) -> None:
        if self.first_byte_s is None:
            self.first_byte_s = now
            if self.ticket is not None:
                self.ticket.first_token()

    def next_endpoint(self) -> tuple[PoolSnapshot, Endpoint] | None:
        """The endpoint of the next attempt (never one already tried), bound to the ticket."""
        assert self.choose is not None
        choice = self.choose(self.tried)
        if choice is not None:
            pool, endpoint = choice
            self.tried.add(endpoint.url)
            if self.ticket is not None:
                self.ticket.rebind(endpoint.url)
            self.pool, self.instance = pool.name, endpoint.instance
        return choice


class Retryable(Exception):
    """An attempt failed before anything reached the client; ``engine_fault`` False when the
    engine is fine but cannot take this request (no point trying others, nor ejecting it)."""

    def __init__(
        self, reason: str, status: int = 502, body: bytes = b"", *, engine_fault: bool = True
    ) -> None:
        super().__init__(reason)
        self.reason, self.status, self.body = reason, status, body
        self.engine_fault = engine_fault


@dataclass(slots=True)
class Opened:
    """A successful attempt: either a buffered body or a live stream plus its first chunk."""

    response: UpstreamResponse
    body: bytes | None = None
    first_chunk: bytes = b""
    chunks: AsyncGenerator[bytes, None] | None = None
    closed: bool = False

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.chunks is not None:
            await self.chunks.aclose()
        self.response.close()


class Tracked:
    """A request (or a PD prefill leg) counted on an endpoint (in-flight gauge, tracker) for a
    ``with`` block. ``failed`` stays True unless the endpoint answered (``answered``, or the
    block sets it False); the tracker books the outcome on exit. A class rather than a
    generator-based context manager: every attempt passes it."""

    __slots__ = ("_gauge", "_state", "_url", "failed")

    def __init__(self, state: RouterState, pool: str, endpoint: Endpoint) -> None:
        self._state, self._url = state, endpoint.url
        self._gauge = state.metrics.child(state.metrics.in_flight, pool, endpoint.instance)
        self.failed = True

    def __enter__(self) -> Tracked:
        self._state.tracker.start(self._url)
        self._gauge.inc()
        return self

    def __exit__(self, *_: object) -> None:
        self._state.tracker.finish(self._url, failed=self.failed)
        self._gauge.dec()


def answered(state: RouterState, endpoint: Endpoint, started: float, slot: Tracked) -> None:
    """``endpoint`` answered (a status below 500) an attempt opened at ``started``: it is healthy,
    its time to first byte feeds the tracker, and ``slot`` closes as a success."""
    state.health.success(endpoint.url)
    state.tracker.first_byte(endpoint.url, started)
    slot.failed = False


def count_retry(state: RouterState, pool: str, endpoint: Endpoint, reason: str) -> None:
    state.metrics.child(state.metrics.retries, pool, endpoint.instance, reason).inc()
    state.endpoint_failed(pool, endpoint, reason)


async def open_attempt(
    state: RouterState,
    upstream: Upstream,
    ex: Exchange,
    endpoint: Endpoint,
    body: bytes,
    *,
    stream: bool | None = None,
) -> Opened:
    """POST ``body`` (``stream``: whether it asks for a stream, else as the client's request);
    a stream must show its first event within ``timeouts.first_byte_s``. The wait ends early
    (``ejected``) when the endpoint is ejected as hung meanwhile."""
    try:
        with state.pending.waiting(endpoint.url):
            if not (ex.parsed.stream if stream is None else stream):
                return await _open(upstream, ex, endpoint, body)
            async with asyncio.timeout(state.settings.timeouts.first_byte_s):
                return await _open(upstream, ex, endpoint, body)
    except TimeoutError as exc:
        raise Retryable("first_byte_timeout", 504) from exc
    except Released as exc:
        raise Retryable("ejected", 503) from exc


async def _open(upstream: Upstream, ex: Exchange, endpoint: Endpoint, body: bytes) -> Opened:
    headers = {"Content-Type": "application/json", "X-Request-Id": ex.request_id}
    try:
        resp = await upstream.post(endpoint.url, ex.parsed.path, body, headers)
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
    except BaseException:  # Retryable, or cancelled by the first-byte timeout
        resp.close()
        raise
