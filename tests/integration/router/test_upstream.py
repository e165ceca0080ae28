"""The lean upstream client against a scripted raw-socket HTTP server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from router_procs import free_port

from sagellm_router.upstream import Response, UpstreamError, UpstreamPool

Reply = Callable[[bytes], bytes | None]  # request bytes -> raw response (None: hang)


class RawServer:
    def __init__(self, replies: list[Reply]) -> None:
        self.replies = replies
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.replies:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                reply = self.replies.pop(0)(request)
                if reply is None:
                    await asyncio.sleep(10)
                    return
                writer.write(reply)
                await writer.drain()
                if b"connection: close" in reply.lower() or (
                    b"content-length" not in reply.lower() and b"chunked" not in reply
                ):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[list[Reply]], asyncio.Future[tuple[RawServer, str]]]]:
    servers: list[asyncio.Server] = []

    async def start(replies: list[Reply]) -> tuple[RawServer, str]:
        raw = RawServer(replies)
        server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
        servers.append(server)
        return raw, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start  # type: ignore[misc]
    for server in servers:
        server.close()


def ok(body: bytes) -> Reply:
    return lambda _: (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (len(body), body)
    )


async def test_content_length_and_keep_alive_reuse(serve) -> None:  # type: ignore[no-untyped-def]
    raw, url = await serve([ok(b'{"a":1}'), ok(b'{"b":2}')])
    pool = UpstreamPool(1.0, 1.0)
    for expected in (b'{"a":1}', b'{"b":2}'):
        resp = await pool.post(url, "/v1/completions", b"{}", {"X-Request-Id": "r"})
        assert (resp.status, resp.content_type) == (200, "application/json")
        assert await resp.read() == expected
        resp.close()
    assert raw.connections == 1
    assert raw.requests[0].startswith(b"POST /v1/completions HTTP/1.1\r\n")
    assert b"X-Request-Id: r\r\n" in raw.requests[0]
    await pool.close()


async def test_chunked_stream_with_extensions_and_trailers(serve) -> None:  # type: ignore[no-untyped-def]
    chunked = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n"
               b"6;ext=1\r\ndata: \r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n")  # fmt: skip
    _, url = await serve([lambda _: chunked])
    pool = UpstreamPool(1.0, 1.0)
    resp = await pool.post(url, "/v1/completions", b"{}", {})
    assert resp.content_type == "text/event-stream"
    assert [c async for c in resp.chunks()] == [b"data: ", b"abc"]
    resp.close()
    await pool.close()


async def test_close_delimited_body_and_stale_keep_alive_retry(serve) -> None:  # type: ignore[no-untyped-def]
    close_delimited = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{}"
    raw, url = await serve([ok(b"1"), lambda _: close_delimited])
    pool = UpstreamPool(1.0, 1.0)
    first = await pool.post(url, "/x", b"", {})
    assert await first.read() == b"1"
    first.close()
    raw.replies.insert(0, lambda _: b"")  # the server drops the kept-alive connection
    second = await pool.post(url, "/x", b"", {})  # retried on a fresh connection
    assert await second.read() == b"{}"
    second.close()
    assert raw.connections == 2
    await pool.close()


async def test_a_cut_answer_on_a_kept_alive_connection_is_not_resent(serve) -> None:  # type: ignore[no-untyped-def]
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n123"
    raw, url = await serve([ok(b"1"), lambda _: cut])
    pool = UpstreamPool(1.0, 1.0)
    first = await pool.post(url, "/x", b"", {})
    assert await first.read() == b"1"
    first.close()
    with pytest.raises(UpstreamError) as err:  # the engine answered: resending would repeat it
        await pool.post(url, "/x", b"", {})
    assert (err.value.reason, err.value.answered) == ("disconnected", True)
    assert (len(raw.requests), raw.connections) == (2, 1)
    await pool.close()


async def test_errors_are_named() -> None:
    pool = UpstreamPool(0.5, 0.2)
    with pytest.raises(UpstreamError) as refused:
        await pool.post(f"http://127.0.0.1:{free_port()}", "/x", b"", {})
    assert refused.value.reason == "connect_error"


async def test_header_timeout_and_short_body(serve) -> None:  # type: ignore[no-untyped-def]
    _, url = await serve([lambda _: None])
    pool = UpstreamPool(0.5, 0.1)
    with pytest.raises(UpstreamError) as slow:
        await pool.post(url, "/x", b"", {})
    assert slow.value.reason == "timeout"
    short = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n123"
    _, url2 = await serve([lambda _: short])
    with pytest.raises(UpstreamError) as cut:  # a small body is read along with the head
        await pool.post(url2, "/x", b"", {})
    assert (cut.value.reason, cut.value.answered) == ("disconnected", True)


async def test_batches_join_chunks_that_arrived_together(serve) -> None:  # type: ignore[no-untyped-def]
    chunked = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n"
               b"6;ext=1\r\ndata: \r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n")  # fmt: skip
    raw, url = await serve([lambda _: chunked, ok(b"2")])
    pool = UpstreamPool(1.0, 1.0)
    resp = await pool.post(url, "/v1/completions", b"{}", {})
    assert [c async for c in resp.batches()] == [b"data: abc"]
    resp.close()
    second = await pool.post(url, "/x", b"", {})  # the connection was kept alive and reused
    assert await second.read() == b"2"
    second.close()
    assert raw.connections == 1
    await pool.close()


async def test_a_large_body_is_read_whole_through_paused_reads(serve) -> None:  # type: ignore[no-untyped-def]
    big = bytes(range(256)) * (3 << 12)  # 3 MiB: over the client's unread-bytes limit
    raw, url = await serve([ok(big), ok(b"after")])
    pool = UpstreamPool(1.0, 1.0)
    resp = await pool.post(url, "/x", b"", {})
    await asyncio.sleep(0.1)  # let the engine's bytes pile up unread
    assert len(resp._conn._buf) < 2 << 20  # type: ignore[attr-defined]  # reading paused
    assert await resp.read() == big
    resp.close()
    second = await pool.post(url, "/x", b"", {})
    assert await second.read() == b"after"
    second.close()
    assert raw.connections == 1
    await pool.close()


async def test_a_body_cut_by_the_engine_is_a_disconnect(serve) -> None:  # type: ignore[no-untyped-def]
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (1 << 17)
    cut_plain = head + b"x" * 1000  # over the preload size: read piece by piece, then cut
    cut_stream = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n6\r\ndata: \r\n")  # fmt: skip
    for reply, pieces in ((cut_plain, [b"x" * 1000]), (cut_stream, [b"data: "])):
        _, url = await serve([lambda _, r=reply: r])  # type: ignore[misc]  # then it closes
        pool = UpstreamPool(1.0, 1.0)
        resp = await pool.post(url, "/x", b"", {})
        got: list[bytes] = []
        with pytest.raises(UpstreamError) as err:
            await _drain(resp, got)
        assert err.value.reason == "disconnected"
        assert b"".join(got) == b"".join(pieces)
        resp.close()
        assert pool._idle.get(url) == []  # a cut connection is never reused
        await pool.close()


async def test_a_silent_stream_times_out_and_is_not_reused(serve) -> None:  # type: ignore[no-untyped-def]
    stream = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n6\r\ndata: \r\n")  # fmt: skip
    _, url = await serve([lambda _: stream, lambda _: None])  # then silence, connection open
    pool = UpstreamPool(1.0, 1.0, stream_idle_timeout=0.1)
    resp = await pool.post(url, "/x", b"", {})
    chunks = resp.chunks()
    assert await anext(chunks) == b"data: "
    with pytest.raises(UpstreamError) as err:
        await anext(chunks)
    assert err.value.reason == "timeout"
    resp.close()
    assert pool._idle.get(url) == []
    await pool.close()


async def test_stray_bytes_after_an_answer_stop_reuse(serve) -> None:  # type: ignore[no-untyped-def]
    stray = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1EXTRA"
    raw, url = await serve([lambda _: stray, ok(b"2")])
    pool = UpstreamPool(1.0, 1.0)
    first = await pool.post(url, "/x", b"", {})
    assert await first.read() == b"1"
    await asyncio.sleep(0.05)
    first.close()  # the connection holds bytes nobody asked for: dropped, not pooled
    second = await pool.post(url, "/x", b"", {})
    assert await second.read() == b"2"
    second.close()
    assert raw.connections == 2
    await pool.close()


async def test_a_cancelled_request_drops_its_connection(serve) -> None:  # type: ignore[no-untyped-def]
    raw, url = await serve([lambda _: None, ok(b"2")])
    pool = UpstreamPool(1.0, 5.0)
    waiting = asyncio.create_task(pool.post(url, "/x", b"", {}))
    await asyncio.sleep(0.1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert pool._idle.get(url) is None  # never handed back to the pool
    second = await pool.post(url, "/x", b"", {})  # a fresh connection
    assert await second.read() == b"2"
    second.close()
    assert raw.connections == 2
    await pool.close()


async def _drain(resp: Response, into: list[bytes]) -> None:
    async for piece in resp.chunks():
        into.append(piece)
