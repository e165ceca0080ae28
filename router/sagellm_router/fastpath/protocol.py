"""The fast path: an asyncio protocol serving plain inference requests itself.

aiohttp's server stack costs more CPU per request than all the router's own work, so plain
``POST /v1/...`` requests (see ``head.parse_head``) are parsed and answered here, one at a time
per connection, in order (pipelined requests wait their turn); a request with ``Connection:
close`` is answered with it and the connection closed after the answer. At the first request
that is not plain — another route, ``Expect``, a chunked body, a malformed head —
the connection is handed to aiohttp with the bytes not yet consumed, and stays there; aiohttp
serves everything else (health, metrics, admin) and every error of HTTP itself.

Edge limits (``edge.Edge``, shared with aiohttp): a connection beyond ``max_connections`` or a
read beyond ``max_buffered_bytes`` is answered 503 and closed; the API key and the declared body
size are checked as soon as the head is complete, before any body byte is waited for; a head
or body that takes longer than its timeout is answered 408 and closed. Every refusal writes the
answer, half-closes and discards what the client still sends for ``LINGER_S`` before closing,
so the client reads the answer instead of a reset.

A client that disconnects cancels its request's task (aiohttp's ``handler_cancellation``).
``Listener.drain`` stops taking connections' requests as keep-alive: each request that arrives
while draining is served with ``Connection: close``; it returns when nothing is running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import cast

from sagellm_router.downstream import Downstream
from sagellm_router.edge import Edge, over_budget, render, timed_out
from sagellm_router.errors import ApiError
from sagellm_router.fastpath.handed import Handed
from sagellm_router.fastpath.head import (
    LAST_CHUNK,
    Head,
    Slow,
    chunk,
    parse_head,
    response_head,
)

log = logging.getLogger(__name__)

#: Serves one request into a downstream: ``(path, body, lower-cased headers, downstream)``.
Serve = Callable[[str, bytes, Mapping[str, str], Downstream], Awaitable[None]]
#: Builds the protocol that takes over a connection (aiohttp's ``web.Server``).
Fallback = Callable[[], asyncio.Protocol]

_MAX_BUFFERED = 1 << 20  # pipelined bytes beyond this pause reading until the queue drains
LINGER_S = 1.0  # after a refusal: read and drop the client's bytes this long, then close


@dataclass
class Listener:
    """What every fast connection shares: the handler, the edge and the open connections."""

    serve: Serve
    fallback: Fallback
    paths: frozenset[str]
    edge: Edge
    clock: Callable[[], float] = time.monotonic
    connections: set[FastProtocol] = field(default_factory=set, init=False)
    stopping: bool = field(default=False, init=False)
    _date: tuple[int, str] = field(default=(0, ""), init=False)
    _settled: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def date(self) -> str:
        now = int(time.time())
        if now != self._date[0]:
            self._date = (now, formatdate(now, usegmt=True))
        return self._date[1]

    def protocol(self) -> FastProtocol:
        return FastProtocol(self)

    async def drain(self, timeout_s: float) -> None:
        """Serve what arrives with ``Connection: close``; return once no request is running or
        partly received (or after ``timeout_s``), closing every connection left."""
        self.stopping = self.edge.draining = True
        deadline = self.clock() + timeout_s
        while (left := deadline - self.clock()) > 0 and any(c.busy for c in self.connections):
            self._settled.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), left)
        for conn in list(self.connections):
            conn.close()

    def settled(self) -> None:
        """A connection stopped being busy (``drain`` re-checks)."""
        self._settled.set()

    def check(self) -> None:
        """Enforce head/body read timeouts and the keep-alive idle limit on every connection."""
        now = self.clock()
        for conn in list(self.connections):
            conn.check(now)

    async def sweep(self, every_s: float = 1.0) -> None:
        """``check`` every ``every_s`` (background task)."""
        while True:
            await asyncio.sleep(every_s)
            self.check()


class FastProtocol(asyncio.Protocol):
    """One client connection on the fast path."""

    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self._edge = listener.edge
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._held = 0  # bytes of _buf reserved in the edge's buffer budget
        self._head: Head | None = None  # head of the request whose body is still arriving
        self._since = 0.0  # when the sweep first saw the current head or body incomplete
        self._task: asyncio.Task[None] | None = None
        self._paused = False
        self._refused = False
        self._last = False  # the running request is the connection's last (Connection: close)
        self._drain: asyncio.Future[None] | None = None
        self.last_active = listener.clock()

    @property
    def busy(self) -> bool:
        """A request is running or partly received."""
        return self._task is not None or (bool(self._buf) and not self._refused)

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The request being served, if any."""
        return self._task

    @property
    def closing(self) -> bool:
        """Responses say ``Connection: close``: the client asked, or the router is draining."""
        return self._last or self._listener.stopping

    # -- asyncio callbacks ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if not self._edge.open_connection():
            self._refused = True  # not counted: the refusal below closes it
            self._refuse(over_budget("open connections"))
            return
        self._listener.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering after a refusal: drop what the client still sends
        if not self._edge.reserve(len(data)):
            if self._task is None:
                self._refuse(over_budget("buffered request bytes"))
                return
            # A pipelined read while an answer is being written: refusing now would cut that
            # answer, so hold the bytes (counted) and read no more until the answer is done.
            self._edge.reserve(len(data), force=True)
            self._set_reading(False)
        self._held += len(data)
        self._buf += data
        if self._task is None:
            self._next()
        elif len(self._buf) > _MAX_BUFFERED and not self._paused:
            self._set_reading(False)

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self._listener.connections:
            self._listener.connections.discard(self)
            self._edge.close_connection()
        self._edge.release(self._held)
        self._held = 0
        self._transport = None
        if self._task is not None:
            self._task.cancel()  # the client left: stop its request (and the upstream one)
        self._wake()
        self._listener.settled()

    def pause_writing(self) -> None:
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake()

    # -- requests ---------------------------------------------------------------------------
    def _next(self) -> None:
        """Start the next buffered request, or hand the connection over, or wait for bytes."""
        if self._transport is None or self._refused:
            return
        head = self._head
        if head is None:
            try:
                head = parse_head(self._buf, self._listener.paths)
            except Slow:
                self._hand_over()
                return
            if head is None:
                return
            err = self._edge.check_head(head.path, head.headers, head.length)
            if err is not None:  # before any body byte is waited for
                self._refuse(err)
                return
            self._head, self._since = head, 0.0
        end = head.size + head.length
        if len(self._buf) < end:
            if self._paused:
                self._set_reading(True)
            return
        body = bytes(self._buf[head.size : end])
        del self._buf[:end]
        self._edge.release(end)
        self._held -= end
        self._head, self._since, self._last = None, 0.0, head.close
        self._task = asyncio.get_running_loop().create_task(self._serve(head, body))
        self._task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._task = None
        self.last_active = self._listener.clock()
        if self._transport is None:
            return
        if self.closing:
            self._refused = True  # bytes after the last request are not served
            self.close()
            self._listener.settled()
            return
        if self._paused:
            self._set_reading(True)
        if self._buf:
            self._next()

    async def _serve(self, head: Head, body: bytes) -> None:
        down = RawDownstream(self)
        try:
            await self._listener.serve(head.path, body, head.headers, down)
        except ApiError as err:
            self._error(down, err)
        except ConnectionError:  # the client went away while we wrote
            self.close()
            return
        except Exception:
            log.exception("unhandled error serving POST %s", head.path)
            self._error(down, ApiError(500, "internal router error; see router logs"))
        if not down.finished:  # the handler never answered: do not leave the client waiting
            self.close()

    def _error(self, down: RawDownstream, err: ApiError) -> None:
        """Answer with ``err`` unless the response has begun; then cut it so the client sees."""
        close = False
        if not down.started:
            try:
                down.send(*render(err))
            except ConnectionError:
                close = True
        if down.started != down.finished or close:
            self.close()

    def check(self, now: float) -> None:
        """Close this connection if idle too long, or answer 408 if a head or body is late."""
        settings = self._edge.settings
        if self._task is not None or self._refused:
            return
        if not self._buf and self._head is None:
            if now - self.last_active > settings.keepalive_s:
                self.close()
            return
        if not self._since:
            self._since = now  # first seen incomplete: the limit counts from here
            return
        part, limit = ("head", settings.head_timeout_s)
        if self._head is not None:
            part, limit = ("body", settings.body_timeout_s)
        if now - self._since > limit:
            self._refuse(timed_out(part, limit))

    def _refuse(self, err: ApiError) -> None:
        """Answer ``err`` with ``Connection: close``, then drop input for ``LINGER_S``, close."""
        transport = self._transport
        self._refused = True
        self._buf.clear()
        self._edge.release(self._held)
        self._held = 0
        self._listener.settled()
        if transport is None or transport.is_closing():
            return
        status, headers, body = render(err, close=True)
        transport.write(response_head(status, headers, len(body), close=False, date=self.date()))
        transport.write(body)
        if transport.can_write_eof():
            transport.write_eof()
        if self._paused:
            self._set_reading(True)
        asyncio.get_running_loop().call_later(LINGER_S, self.close)

    def _hand_over(self) -> None:
        """Give the connection, with the bytes not consumed yet, to aiohttp (still counted in
        the edge's connections until it closes; its bytes are aiohttp's to bound)."""
        transport, data = self._transport, bytes(self._buf)
        assert transport is not None
        self._buf.clear()
        self._edge.release(self._held)
        self._held = 0
        self._listener.connections.discard(self)
        self._transport = None
        handler = Handed(self._listener.fallback(), self._edge)
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if self._paused:
            transport.resume_reading()
        if data:
            handler.data_received(data)

    # -- writing ----------------------------------------------------------------------------
    def date(self) -> str:
        return self._listener.date()

    def write(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            raise ConnectionResetError("client disconnected")
        self._transport.write(data)

    async def drained(self) -> None:
        """Wait while the client is slower than the response (transport buffer over its mark);
        raises ``ConnectionResetError`` if it left meanwhile."""
        if self._drain is not None:
            await self._drain
            if self._transport is None:
                raise ConnectionResetError("client disconnected")

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _wake(self) -> None:
        waiter, self._drain = self._drain, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _set_reading(self, on: bool) -> None:
        if self._transport is None:
            return
        if on:
            self._transport.resume_reading()
        else:
            self._transport.pause_reading()
        self._paused = not on


class RawDownstream:
    """``Downstream`` writing HTTP/1.1 straight to a fast-path connection."""

    __slots__ = ("_conn", "finished", "started")

    def __init__(self, conn: FastProtocol) -> None:
        self._conn = conn
        self.started = self.finished = False

    def send(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        head = response_head(
            status, headers, len(body), close=self._conn.closing, date=self._conn.date()
        )
        self._conn.write(head + body)
        self.started = self.finished = True

    async def whole(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.send(status, headers, body)

    async def start(self, status: int, headers: Mapping[str, str]) -> None:
        headers = {**headers, "Cache-Control": "no-cache"}
        close, date = self._conn.closing, self._conn.date()
        self._conn.write(response_head(status, headers, None, close=close, date=date))
        self.started = True

    async def write(self, data: bytes) -> None:
        if data:
            self._conn.write(chunk(data))
            await self._conn.drained()

    async def end(self) -> None:
        self._conn.write(LAST_CHUNK)
        self.finished = True
