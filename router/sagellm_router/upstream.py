"""A lean HTTP/1.1 client for the forwarding hot path (keep-alive pool of asyncio protocols).

aiohttp's client costs more CPU per request than everything else the router does together, so
requests to engines go through this small client instead: one request per connection at a time,
``Content-Length`` or chunked responses, idle connections reused per endpoint. Each connection
is a plain ``asyncio.Protocol`` buffering what arrives (no stream reader/writer pair, no
``asyncio.timeout`` per read: one timer per wait). Health probes and scrapes still use aiohttp.
Every failure surfaces as ``UpstreamError`` with a short reason (``connect_error``, ``timeout``,
``disconnected``, ``protocol_error``).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Protocol
from urllib.parse import urlsplit

from sagellm_router.chunked import ChunkDecoder

_PRELOAD_MAX = 1 << 16  # bodies up to this size are read with the response head
_READ = 1 << 16  # the most one read of a body hands on
_BUFFER_LIMIT = 1 << 20  # unread bytes beyond this pause reading from the engine
_RECOVERABLE = (ConnectionError, OSError)


class UpstreamError(Exception):
    """``answered``: the engine had sent a response head (resending would repeat the request)."""

    def __init__(self, reason: str, detail: str = "", *, answered: bool = False) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.answered = reason, answered


class UpstreamResponse(Protocol):
    """What the proxy reads from an engine: status, headers, then the body once."""

    status: int
    headers: dict[str, str]

    @property
    def content_type(self) -> str: ...

    async def read(self) -> bytes: ...

    def chunks(self) -> AsyncGenerator[bytes, None]: ...

    def batches(self) -> AsyncGenerator[bytes, None]:
        """The body like ``chunks``, but what arrived together comes as one piece."""
        ...

    def close(self) -> None: ...


class Upstream(Protocol):
    """Sends requests to engines: over HTTP (``UpstreamPool``) or in-process (``inprocess``)."""

    async def post(
        self, base: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> UpstreamResponse: ...

    async def close(self) -> None: ...


class _Conn(asyncio.Protocol):
    """One keep-alive connection to an engine (an asyncio protocol: bytes land in a buffer the
    request's task reads, one wake-up per socket read, no stream objects in between).

    The reads wait until an absolute ``deadline`` on the loop's clock (one timer per wait that
    is not already satisfied); reading pauses while more than ``limit`` bytes wait unread.
    """

    __slots__ = ("_buf", "_closed", "_limit", "_paused", "_waiter", "key", "transport")

    def __init__(self, key: str, limit: int = _BUFFER_LIMIT) -> None:
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


class Response:
    """An upstream response whose body is read once, as a whole or chunk by chunk."""

    def __init__(
        self,
        pool: UpstreamPool,
        conn: _Conn,
        status: int,
        headers: dict[str, str],
        body: bytes | None = None,
    ) -> None:
        self._pool, self._conn = pool, conn
        self.status, self.headers = status, headers
        self._body_read = body  # a small Content-Length body, read with the head
        self._done = False

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    async def read(self) -> bytes:
        if self._body_read is not None:
            self._done = True
            return self._body_read
        return b"".join([chunk async for chunk in self.chunks()])

    def chunks(self) -> AsyncGenerator[bytes, None]:
        """The body, de-chunked, piece by piece as it arrives."""
        return self._body(batched=False)

    def batches(self) -> AsyncGenerator[bytes, None]:
        """The body, de-chunked, one piece per socket read (chunks that came together)."""
        return self._body(batched=True)

    async def _body(self, *, batched: bool) -> AsyncGenerator[bytes, None]:
        conn, idle_s = self._conn, self._pool.read_timeout
        if self.content_type == "text/event-stream":
            idle_s = self._pool.stream_idle_timeout  # a stream that goes silent has stalled
        if self._body_read is not None:
            if self._body_read:
                yield self._body_read
            self._done = True
            return
        try:
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                async for pieces in _dechunk(conn, idle_s, self._no_reuse):
                    if batched:
                        yield b"".join(pieces) if len(pieces) > 1 else pieces[0]
                    else:
                        for piece in pieces:
                            yield piece
            elif "content-length" in self.headers:
                remaining = int(self.headers["content-length"])
                while remaining > 0:
                    piece = await conn.some(min(remaining, _READ), idle_s)
                    if not piece:
                        raise UpstreamError("disconnected", "body shorter than Content-Length")
                    remaining -= len(piece)
                    yield piece
            else:
                self.headers["connection"] = "close"  # body ends when the connection does
                while piece := await conn.some(_READ, idle_s):
                    yield piece
        except TimeoutError as exc:
            raise UpstreamError("timeout", f"no data from upstream for {idle_s:g}s") from exc
        except (ValueError, *_RECOVERABLE) as exc:
            raise UpstreamError("disconnected", str(exc) or type(exc).__name__) from exc
        self._done = True

    def _no_reuse(self) -> None:
        self.headers["connection"] = "close"

    def close(self) -> None:
        """Return the connection to the pool if the body was fully read, else drop it."""
        reusable = self._done and self.headers.get("connection", "").lower() != "close"
        self._pool.release(self._conn, reusable)


async def _dechunk(
    conn: _Conn, idle_s: float, on_leftover: Callable[[], None]
) -> AsyncIterator[list[bytes]]:
    """The de-chunked body: per socket read, the payload pieces it completed."""
    decoder = ChunkDecoder()
    while not decoder.done:
        data = await conn.some(_READ, idle_s)
        if not data:
            raise ConnectionError("connection closed inside a chunked body")
        if pieces := decoder.feed(data):
            yield pieces
    if decoder.leftover:
        on_leftover()  # bytes after the body: the connection is out of step, do not reuse it


class UpstreamPool:
    """Keep-alive connections per endpoint base URL.

    ``read_timeout`` bounds the wait for a response head and for each piece of a plain body;
    ``stream_idle_timeout`` (default: the same) the silence between pieces of an SSE body.
    """

    def __init__(
        self,
        connect_timeout: float,
        read_timeout: float,
        max_idle: int = 256,
        stream_idle_timeout: float | None = None,
    ) -> None:
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.stream_idle_timeout = stream_idle_timeout or read_timeout
        self._max_idle = max_idle
        self._idle: dict[str, list[_Conn]] = {}
        self._targets: dict[str, tuple[str, int, ssl.SSLContext | None, bytes]] = {}

    def _target(self, base: str) -> tuple[str, int, ssl.SSLContext | None, bytes]:
        target = self._targets.get(base)
        if target is None:
            parts = urlsplit(base)
            tls = ssl.create_default_context() if parts.scheme == "https" else None
            host = parts.hostname or "localhost"
            port = parts.port or (443 if tls else 80)
            target = self._targets[base] = (host, port, tls, parts.netloc.encode())
        return target

    async def _connect(self, base: str) -> _Conn:
        host, port, tls, _ = self._target(base)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Conn(base), host, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError as exc:
            raise UpstreamError("connect_error", f"connect timeout to {base}") from exc
        except OSError as exc:
            raise UpstreamError("connect_error", f"{base}: {exc.strerror or exc}") from exc
        return conn

    def _take_idle(self, base: str) -> _Conn | None:
        idle = self._idle.get(base)
        while idle:
            conn = idle.pop()
            if conn.reusable:
                return conn
            conn.abort()
        return None

    async def post(self, base: str, path: str, body: bytes, headers: Mapping[str, str]) -> Response:
        """Send a POST and read the status line and headers (and a body up to 64 KiB)."""
        head = self._request_head(base, path, len(body), headers)
        conn = self._take_idle(base)
        if conn is not None:
            try:
                return await self._exchange(conn, head, body)
            except UpstreamError as exc:
                if exc.reason != "disconnected" or exc.answered:
                    raise  # only a closed keep-alive connection is worth a fresh one
        return await self._exchange(await self._connect(base), head, body)

    def _request_head(self, base: str, path: str, length: int, headers: Mapping[str, str]) -> bytes:
        lines = [f"POST {path} HTTP/1.1", f"Content-Length: {length}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        netloc = self._target(base)[3].decode()
        return ("\r\n".join(lines) + f"\r\nHost: {netloc}\r\n\r\n").encode("latin-1")

    async def _exchange(self, conn: _Conn, head: bytes, body: bytes) -> Response:
        """Send the request; read the response head and, if small, its whole body."""
        status, headers, content = -1, dict[str, str](), None
        try:
            conn.write(head + body)
            deadline = asyncio.get_running_loop().time() + self.read_timeout
            status, headers = _parse_head(await conn.head(deadline))
            length = _small_length(headers)
            if length is not None:
                content = await conn.exactly(length, deadline)
        except TimeoutError as exc:
            conn.abort()
            what = "response headers" if status < 0 else "the response body"
            raise UpstreamError("timeout", f"no {what} in time", answered=status >= 0) from exc
        except (ValueError, *_RECOVERABLE) as exc:
            conn.abort()
            detail = str(exc) or type(exc).__name__
            raise UpstreamError("disconnected", detail, answered=status >= 0) from exc
        except asyncio.CancelledError:  # the caller gave up (first-byte timeout, client left)
            conn.abort()
            raise
        return Response(self, conn, status, headers, content)

    def release(self, conn: _Conn, reusable: bool) -> None:
        idle = self._idle.setdefault(conn.key, [])
        if reusable and len(idle) < self._max_idle and conn.reusable:
            idle.append(conn)
        else:
            conn.abort()

    async def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


def _small_length(headers: dict[str, str]) -> int | None:
    """The Content-Length of a body small enough to read along with the head, else None."""
    value = headers.get("content-length")
    if value is None or "transfer-encoding" in headers or not value.isdigit():
        return None
    length = int(value)
    return length if length <= _PRELOAD_MAX else None


def _parse_head(raw: bytes) -> tuple[int, dict[str, str]]:
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
