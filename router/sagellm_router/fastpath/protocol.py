"""The fast path: an asyncio protocol serving plain inference requests itself.

aiohttp's server stack costs more CPU per request than all the router's own work, so plain
``POST /v1/...`` requests (see ``head.parse_head``) are parsed and answered here, one at a time
per connection, in order (pipelined requests wait their turn). At the first request that is not
plain — another route, ``Expect``, a chunked body, ``Connection: close``, a malformed head —
the connection is handed to aiohttp with the bytes not yet consumed, and stays there; aiohttp
serves everything else (health, metrics, admin) and every error of HTTP itself.

A client that disconnects cancels its request's task (aiohttp's ``handler_cancellation``);
``Listener.drain`` lets running requests finish at shutdown and closes idle connections.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import cast

from sagellm_router.downstream import Downstream
from sagellm_router.errors import ApiError
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


@dataclass
class Listener:
    """What every fast connection shares: the handler, limits and the open connections."""

    serve: Serve
    fallback: Fallback
    paths: frozenset[str]
    max_body: int
    idle_timeout_s: float = 75.0
    connections: set[FastProtocol] = field(default_factory=set, init=False)
    stopping: bool = field(default=False, init=False)
    _date: tuple[int, str] = field(default=(0, ""), init=False)

    def date(self) -> str:
        now = int(time.time())
        if now != self._date[0]:
            self._date = (now, formatdate(now, usegmt=True))
        return self._date[1]

    def protocol(self) -> FastProtocol:
        return FastProtocol(self)

    def close_idle(self, older_than_s: float = 0.0) -> None:
        now = time.monotonic()
        for conn in list(self.connections):
            if conn.idle and now - conn.last_active >= older_than_s:
                conn.close()

    async def drain(self, timeout_s: float) -> None:
        """Stop taking requests, close idle connections, wait for running ones to finish."""
        self.stopping = True
        self.close_idle()
        running = [c.task for c in self.connections if c.task is not None]
        if running:
            await asyncio.wait(running, timeout=timeout_s)
        for conn in list(self.connections):
            conn.close()

    async def sweep(self, every_s: float = 5.0) -> None:
        """Close keep-alive connections idle longer than ``idle_timeout_s`` (background task)."""
        while True:
            await asyncio.sleep(every_s)
            self.close_idle(self.idle_timeout_s)


class FastProtocol(asyncio.Protocol):
    """One client connection on the fast path."""

    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._task: asyncio.Task[None] | None = None
        self._paused = False
        self._drain: asyncio.Future[None] | None = None
        self.last_active = time.monotonic()

    @property
    def idle(self) -> bool:
        return self._task is None

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The request being served, if any."""
        return self._task

    # -- asyncio callbacks ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._listener.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._task is None:
            self._next()
        elif len(self._buf) > _MAX_BUFFERED and not self._paused:
            self._set_reading(False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._listener.connections.discard(self)
        self._transport = None
        if self._task is not None:
            self._task.cancel()  # the client left: stop its request (and the upstream one)
        self._wake()

    def pause_writing(self) -> None:
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake()

    # -- requests ---------------------------------------------------------------------------
    def _next(self) -> None:
        """Start the next buffered request, or hand the connection over, or wait for bytes."""
        if self._transport is None or self._listener.stopping:
            return
        try:
            head = parse_head(self._buf, self._listener.paths)
        except Slow:
            self._hand_over()
            return
        if head is None:
            return
        if head.length > self._listener.max_body:
            self._too_large(head)
            return
        end = head.size + head.length
        if len(self._buf) < end:
            if self._paused:
                self._set_reading(True)
            return
        body = bytes(self._buf[head.size : end])
        del self._buf[:end]
        self.last_active = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._serve(head, body))
        self._task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._task = None
        self.last_active = time.monotonic()
        if self._transport is None:
            return
        if self._listener.stopping:
            self.close()
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

    def _error(self, down: RawDownstream, err: ApiError, *, close: bool = False) -> None:
        """Answer with ``err`` unless the response has begun; then cut it so the client sees."""
        if not down.started:
            try:
                down.send(err.status, err.headers(), err.body(), close=close)
            except ConnectionError:
                close = True
        if down.started != down.finished or close:
            self.close()

    def _too_large(self, head: Head) -> None:
        limit = self._listener.max_body
        err = ApiError(413, f"request body is {head.length} bytes; the limit is {limit}")
        self._error(RawDownstream(self), err, close=True)  # the unread body must not be parsed

    def _hand_over(self) -> None:
        """Give the connection, with the bytes not consumed yet, to aiohttp."""
        transport, data = self._transport, bytes(self._buf)
        assert transport is not None
        self._buf.clear()
        self._listener.connections.discard(self)
        self._transport = None
        handler = self._listener.fallback()
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

    def send(
        self, status: int, headers: Mapping[str, str], body: bytes, *, close: bool = False
    ) -> None:
        head = response_head(status, headers, len(body), close=close, date=self._conn.date())
        self._conn.write(head + body)
        self.started = self.finished = True

    async def whole(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.send(status, headers, body)

    async def start(self, status: int, headers: Mapping[str, str]) -> None:
        headers = {**headers, "Cache-Control": "no-cache"}
        self._conn.write(response_head(status, headers, None, close=False, date=self._conn.date()))
        self.started = True

    async def write(self, data: bytes) -> None:
        if data:
            self._conn.write(chunk(data))
            await self._conn.drained()

    async def end(self) -> None:
        self._conn.write(LAST_CHUNK)
        self.finished = True
