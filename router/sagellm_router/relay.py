"""Relaying a stream to the client, and continuing it on another engine when its engine fails.

A stream breaks when the upstream connection drops, goes silent for ``timeouts.stall_s``
(``stall``), or ends without ``[DONE]`` (``truncated``). The failed endpoint is reported
(``RouterState.endpoint_failed``). Then, when the pool allows it (``midStreamFailover``) and the
request's shape can be continued (``failover.refusal``), the stream continues on another
endpoint (see ``failover``), at most ``retries.max_failovers`` times; otherwise, or when no
endpoint can take the continuation, it ends with an SSE error event and ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from sagellm_router import failover as fo
from sagellm_router.errors import sse_error_event
from sagellm_router.exchange import Exchange, Opened, Retryable, Tracked, count_retry, open_attempt
from sagellm_router.sse import UsageScanner
from sagellm_router.state import RouterState
from sagellm_router.types import Endpoint, PoolSnapshot
from sagellm_router.upstream import Upstream, UpstreamError
from sagellm_router.validation import CHAT

log = logging.getLogger(__name__)


@dataclass
class Segment:
    """One upstream stream feeding the client: the original, or a continuation."""

    opened: Opened
    pool: str
    endpoint: Endpoint
    splicer: fo.Splicer | None = None


@dataclass
class Tail:
    """How a spliced stream ends instead of continuing (max_tokens used up, or finished)."""

    usage: dict[str, int] | None
    length_cut: bool


class StreamRelay:
    """Pumps segments to the client; ``transcript`` is None when failover is off for it."""

    def __init__(self, state: RouterState, upstream: Upstream, ex: Exchange) -> None:
        self.state, self.upstream, self.ex = state, upstream, ex
        refused = "disabled" if not ex.failover else fo.refusal(ex.parsed.path, ex.parsed.body)
        self.refused = refused
        self.transcript = None if refused else fo.Transcript(chat=ex.parsed.path == CHAT)
        self.want_usage = fo.wants_usage(ex.parsed.body)
        self.prompt_tokens = 0
        self.seam_tokens = 0  # tokens the client had at the last failover
        self.failovers = 0
        self.scanner = UsageScanner()

    async def run(self, first: Segment) -> None:
        """Relay ``first`` (opened, tracked and closed by the caller), then continuations."""
        segment, reason = first, await self._pump(first)
        while reason is not None:
            if reason != "total_timeout":
                self.state.endpoint_failed(segment.pool, segment.endpoint, reason)
            await segment.opened.close()
            nxt = await self._continue(segment, reason)
            if nxt is None:
                return
            segment = nxt
            try:
                with Tracked(self.state, segment.pool, segment.endpoint) as slot:
                    slot.failed = False
                    reason = await self._pump(segment)
            finally:
                await segment.opened.close()

    async def _pump(self, seg: Segment) -> str | None:
        """Relay ``seg`` until it ends; None when it ended cleanly, else why it broke."""
        ex, clock, client = self.ex, self.state.clock, self.ex.down
        m = self.state.metrics
        itl = m.child(m.itl, ex.parsed.model, ex.pool)
        deadline = ex.started + self.state.settings.timeouts.total_s
        assert seg.opened.chunks is not None
        chunk, last, tail, held = seg.opened.first_chunk, clock(), b"", b""
        while chunk:
            if seg.splicer is not None:
                chunk = seg.splicer.feed(chunk)
            elif self.transcript is not None:  # never leave half an event with the client
                chunk, held = _whole_events(held + chunk)
            if chunk:
                self.scanner.feed(chunk)
                if self.transcript is not None:
                    self.transcript.feed(chunk)
                tail = (tail + chunk)[-16:]
                await client.write(chunk)  # raises if the client left; upstream is then closed
            try:
                chunk = await anext(seg.opened.chunks, b"")
            except UpstreamError as exc:
                return "stall" if exc.reason == "timeout" else exc.reason
            now = clock()
            itl.observe(now - last)
            ex.itl_total_s += now - last
            ex.itl_count += 1
            last = now
            if now > deadline and chunk:
                return "total_timeout"
        if seg.splicer is None:
            return None if b"[DONE]" in tail else "truncated"
        if not seg.splicer.done:
            return "truncated"
        usage = fo.summed_usage(self.prompt_tokens, self.seam_tokens, seg.splicer.usage)
        await self._end(usage, length_cut=False)
        return None

    async def _end(self, usage: dict[str, int] | None, *, length_cut: bool) -> None:
        assert self.transcript is not None
        data = fo.ending(self.transcript, self.want_usage, usage, length_cut)
        self.scanner.feed(data)
        await self.ex.down.write(data)

    async def _continue(self, broken: Segment, reason: str) -> Segment | None:
        """The next segment, or None after ending the client's stream (error or tail)."""
        m, pool = self.state.metrics, broken.pool
        why = self._why_not(reason)
        if why is not None:
            m.child(m.failovers, pool, reason, "refused").inc()
            await self._break(broken.endpoint, reason, why)
            return None
        assert self.transcript is not None
        if self.transcript.usage or (self.transcript.finish_reason and not self.want_usage):
            await self._end(None, length_cut=False)  # only the end was missing
            return None
        self.failovers += 1
        try:
            nxt = await self._open_continuation()
        except Retryable as exc:
            m.child(m.failovers, pool, reason, "failed").inc()
            await self._break(broken.endpoint, reason, f"no engine could continue: {exc.reason}")
            return None
        if isinstance(nxt, Tail):
            await self._end(nxt.usage, length_cut=nxt.length_cut)
            return None
        m.child(m.failovers, pool, reason, "continued").inc()
        log.warning(
            "stream continued on %s after %s on %s", nxt.endpoint.instance, reason,
            broken.endpoint.instance, extra={"request_id": self.ex.request_id, "reason": reason},
        )  # fmt: skip
        return nxt

    def _why_not(self, reason: str) -> str | None:
        if self.transcript is None:
            return self.refused
        self.transcript.fold()
        if reason == "total_timeout":
            return "total_timeout"
        if self.transcript.unsafe:
            return self.transcript.unsafe
        if self.failovers >= self.state.settings.retries.max_failovers:
            return "max_failovers"
        return None

    async def _open_continuation(self) -> Segment | Tail:
        """Count tokens on the next endpoint, then open the continuation there (retried on
        other endpoints like a first attempt)."""
        last = Retryable("no_endpoint", 503)
        for _ in range(self.state.settings.retries.max_attempts):
            choice = self.ex.next_endpoint()
            if choice is None:
                break
            pool, endpoint = choice
            try:
                return await self._attempt(pool, endpoint)
            except Retryable as exc:
                if not exc.engine_fault:
                    raise
                last = exc
                count_retry(self.state, pool.name, endpoint, exc.reason)
        raise last

    async def _attempt(self, pool: PoolSnapshot, endpoint: Endpoint) -> Segment | Tail:
        assert self.transcript is not None
        text, ex = self.transcript.text, self.ex
        produced = await self._count_text(endpoint, text)
        if self.failovers == 1:
            self.prompt_tokens = await self._count_prompt(endpoint)
        self.seam_tokens = produced
        if self.transcript.finish_reason:
            return Tail(fo.summed_usage(self.prompt_tokens, produced, None), length_cut=False)
        body = fo.continuation(ex.parsed.path, ex.parsed.body, text, produced)
        if body is None:
            return Tail(fo.summed_usage(self.prompt_tokens, produced, None), length_cut=True)
        opened = await open_attempt(self.state, self.upstream, ex, endpoint, orjson.dumps(body))
        if opened.chunks is None:  # e.g. a 400: this engine cannot continue the request
            await opened.close()
            raise Retryable(f"status_{opened.response.status}", engine_fault=False)
        splicer = fo.Splicer(self.transcript.ids, self.transcript.chat)
        return Segment(opened, pool.name, endpoint, splicer)

    async def _count_text(self, endpoint: Endpoint, text: str) -> int:
        body = {"model": self.ex.parsed.model, "prompt": text, "add_special_tokens": False}
        return await self._tokenize(endpoint, body) if text else 0

    async def _count_prompt(self, endpoint: Endpoint) -> int:
        body = self.ex.parsed.body
        request: dict[str, Any] = {"model": self.ex.parsed.model}
        if self.ex.parsed.path == CHAT:
            request["messages"] = body["messages"]
            cont = bool(body.get("continue_final_message"))
            request.update(continue_final_message=cont, add_generation_prompt=not cont)
        else:
            prompt = body["prompt"]
            request["prompt"] = prompt if isinstance(prompt, str) else prompt[0]
        return await self._tokenize(endpoint, request)

    async def _tokenize(self, endpoint: Endpoint, request: Mapping[str, Any]) -> int:
        """The engine's token count (``POST /tokenize``, vLLM's and the simulator's)."""
        headers = {"Content-Type": "application/json", "X-Request-Id": self.ex.request_id}
        data = orjson.dumps(request)
        try:
            async with asyncio.timeout(self.state.settings.timeouts.first_byte_s):
                resp = await self.upstream.post(endpoint.url, "/tokenize", data, headers)
                try:
                    payload = await resp.read()
                finally:
                    resp.close()
        except TimeoutError as exc:
            raise Retryable("first_byte_timeout") from exc
        except UpstreamError as exc:
            raise Retryable(exc.reason) from exc
        try:
            count = orjson.loads(payload).get("count") if resp.status == 200 else None
        except (orjson.JSONDecodeError, AttributeError):
            count = None
        if not isinstance(count, int):
            raise Retryable(f"tokenize_status_{resp.status}", engine_fault=False)
        return count

    async def _break(self, endpoint: Endpoint, reason: str, why: str | None) -> None:
        """End a stream that cannot complete: an SSE error event, then ``data: [DONE]``."""
        log.warning(
            "upstream stream broke; not continued", extra={"endpoint": endpoint.url,
                                                           "reason": reason, "why": why},
        )  # fmt: skip
        self.ex.status = 502
        message = f"upstream {endpoint.instance} failed mid-stream ({reason}); retry the request"
        await self.ex.down.write(sse_error_event(502, message))


def _whole_events(data: bytes) -> tuple[bytes, bytes]:
    """``data`` split into complete SSE events and the incomplete rest."""
    if data.endswith(b"\n\n"):
        return data, b""
    cut = fo.event_end(data)
    return data[:cut], data[cut:]
