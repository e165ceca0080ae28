"""A lean HTTP/1.1 client for the forwarding hot path (keep-alive pool of asyncio protocols).

aiohttp's client costs more CPU per request than everything else the router does together, so
requests to engines go through this small client instead: one request per connection at a time,
``Content-Length`` or chunked responses, idle connections reused per endpoint. Each connection
is a ``connection.Connection`` (a plain ``asyncio.Protocol``). Health probes and scrapes still
use aiohttp.
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
from sagellm_router.connection import Connection, parse_head

_PRELOAD_MAX = 1 << 16  # bodies up to this size are read with the response head
_READ = 1 << 16  # the most one read of a body hands on
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


class Response:
    """An upstream response whose body is read once, as a whole or chunk by chunk."""

    def __init__(
        self,
        pool: UpstreamPool,
        conn: Connection,
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
    conn: Connection, idle_s: float, on_leftover: Callable[[], None]
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
        self._idle: dict[str, list[Connection]] = {}
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

    async def _connect(self, base: str) -> Connection:
        host, port, tls, _ = self._target(base)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: Connection(base),
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls else None,
                )
        except TimeoutError as exc:
            raise UpstreamError("connect_error", f"connect timeout to {base}") from exc
        except OSError as exc:
            raise UpstreamError("connect_error", f"{base}: {exc.strerror or exc}") from exc
        return conn

    def _take_idle(self, base: str) -> Connection | None:
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

    async def _exchange(self, conn: Connection, head: bytes, body: bytes) -> Response:
        """Send the request; read the response head and, if small, its whole body."""
        status, headers, content = -1, dict[str, str](), None
        try:
            conn.write(head + body)
            deadline = asyncio.get_running_loop().time() + self.read_timeout
            status, headers = parse_head(await conn.head(deadline))
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

    def release(self, conn: Connection, reusable: bool) -> None:
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
