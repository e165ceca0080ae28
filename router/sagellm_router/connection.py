"""One keep-alive HTTP/1.1 connection to an engine, as a plain ``asyncio.Protocol``.

Bytes land in a buffer the request's task reads: one wake-up per socket read, no stream
reader/writer pair and no ``asyncio.timeout`` per read (one timer per wait). ``upstream`` pools
these connections and speaks HTTP over them.
"""

from __future__ import annotations

import asyncio

BUFFER_LIMIT = 1 << 20  # unread bytes beyond this pause reading from the engine


class Connection(asyncio.Protocol):
    """One keep-alive connection to an engine (an asyncio protocol: bytes land in a buffer the
    request's task reads, one wake-up per socket read, no stream objects in between).

    The reads wait until an absolute ``deadline`` on the loop's clock (one timer per wait that
    is not already satisfied); reading pauses while more than ``limit`` bytes wait unread.
    """

    __slots__ = ("_buf", "_closed", "_limit", "_paused", "_waiter", "key", "transport")

    def __init__(self, key: str, limit: int = BUFFER_LIMIT) -> None:
        self.key, self._limit = key, limit
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False  # the engine closed its side (or the connection is gone)
        self._paused = False

    # -- asyncio callbacks ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) > self._limit and not self._paused and self.transport is not None:
            self.transport.pause_reading()
            self._paused = True
        self._wake()

    def eof_received(self) -> bool:
        self._closed = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- state ------------------------------------------------------------------------------
    @property
    def reusable(self) -> bool:
        """Open, and no stray bytes buffered (an idle connection must have nothing to read)."""
        t = self.transport
        return not self._closed and not self._buf and t is not None and not t.is_closing()

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._closed = True

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self._closed = True

    # -- reading ----------------------------------------------------------------------------
    async def _more(self, deadline: float) -> None:
        """Wait for more bytes; ``ConnectionError`` once the engine closed, ``TimeoutError``
        at ``deadline``."""
        if self._closed:
            raise ConnectionError("upstream closed the connection")
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_at(deadline, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _take(self, n: int) -> bytes:
        data = bytes(self._buf[:n])
        del self._buf[:n]
        if self._paused and len(self._buf) <= self._limit and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    async def head(self, deadline: float) -> bytes:
        """The response head up to and including its blank line."""
        start = 0
        while (end := self._buf.find(b"\r\n\r\n", start)) < 0:
            if len(self._buf) > self._limit:
                raise ValueError("response head too long")
            start = max(0, len(self._buf) - 3)
            await self._more(deadline)
        return self._take(end + 4)

    async def exactly(self, n: int, deadline: float) -> bytes:
        while len(self._buf) < n:
            await self._more(deadline)
        return self._take(n)

    async def some(self, most: int, idle_s: float) -> bytes:
        """Up to ``most`` bytes as soon as any are there (waiting at most ``idle_s`` for
        them); ``b""`` once the engine closed its side."""
        if not self._buf:
            if self._closed:
                return b""
            loop = asyncio.get_running_loop()
            try:
                await self._more(loop.time() + idle_s)
            except ConnectionError:
                return b""
            if not self._buf:
                return b""
        return self._take(most)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def parse_head(raw: bytes) -> tuple[int, dict[str, str]]:
    """Status and lower-cased headers of an HTTP/1.x response head."""
    lines = raw.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1.x response: {lines[0][:60]!r}")
    status = int(rest[:3])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return status, headers
