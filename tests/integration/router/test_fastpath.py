"""The fast path over raw sockets: pipelining, hand-over to aiohttp, limits, graceful stop."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import yaml
from router_fakes import pool, router_yaml

from sagellm_router.auth import KeyChecker
from sagellm_router.config import EdgeSettings, parse_settings
from sagellm_router.edge import Edge
from sagellm_router.fastpath import Listener
from sagellm_router.server import RouterServer, make_app

BODY = json.dumps({"model": "m", "prompt": "hi", "max_tokens": 2}).encode()


def post(body: bytes = BODY, path: str = "/v1/completions", extra: bytes = b"") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: r\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n".encode()
        + extra
        + b"\r\n"
        + body
    )


class Wire:
    """One raw client connection: write bytes, read HTTP/1.1 responses one by one."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, base: str) -> Wire:
        host, port = base.removeprefix("http://").split(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        head = (await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)).decode()
        status_line, *lines = head.strip().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        else:
            chunks = bytearray()
            while size := int((await self.reader.readuntil(b"\r\n"))[:-2], 16):
                chunks += (await self.reader.readexactly(size + 2))[:-2]
            await self.reader.readexactly(2)
            body = bytes(chunks)
        return int(status_line.split()[1]), headers, body

    async def closed(self) -> bool:
        return await asyncio.wait_for(self.reader.read(1), 5) == b""

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def base(engines, start_router) -> str:  # type: ignore[no-untyped-def]
    fleet = await engines(2)
    return await start_router(router_yaml([pool("p", "m", [e.url for e in fleet])]))


async def test_pipelined_requests_are_answered_in_order(base: str) -> None:
    wire = await Wire.open(base)
    bodies = [json.dumps({"model": m, "prompt": "x"}).encode() for m in ("m", "nope", "m")]
    await wire.send(b"".join(post(b) for b in bodies))
    statuses = [(await wire.response())[0] for _ in bodies]
    assert statuses == [200, 404, 200]
    wire.close()


async def test_a_request_split_into_single_bytes_is_served(base: str) -> None:
    wire = await Wire.open(base)
    for byte in post():
        await wire.send(bytes([byte]))
    status, headers, body = await wire.response()
    assert status == 200
    assert headers["x-sagellm-instance"] in {"p-0", "p-1"}
    assert json.loads(body)["usage"]["completion_tokens"] == 3
    wire.close()


async def test_other_routes_hand_the_connection_to_aiohttp_mid_stream(base: str) -> None:
    wire = await Wire.open(base)
    await wire.send(post())
    assert (await wire.response())[0] == 200  # fast path: no Server header
    await wire.send(b"GET /v1/models HTTP/1.1\r\nHost: r\r\n\r\n" + post())
    status, headers, body = await wire.response()
    assert (status, json.loads(body)["data"][0]["id"]) == (200, "m")
    assert "aiohttp" in headers["server"]
    status, headers, _ = await wire.response()  # the pipelined POST, now served by aiohttp
    assert (status, "aiohttp" in headers["server"]) == (200, True)
    wire.close()


async def test_expect_needs_the_full_stack_and_is_served_by_aiohttp(base: str) -> None:
    wire = await Wire.open(base)
    await wire.send(post(BODY, extra=b"Expect: 100-continue\r\n"))
    assert (await wire.reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 100")
    status, headers, answer = await wire.response()
    assert (status, "aiohttp" in headers["server"]) == (200, True)
    assert json.loads(answer)["usage"]["total_tokens"] == 8
    wire.close()


async def test_connection_close_is_answered_on_the_fast_path_then_closed(base: str) -> None:
    wire = await Wire.open(base)
    await wire.send(post(extra=b"Connection: close\r\n") + post())  # the second is never served
    status, headers, answer = await wire.response()
    assert (status, headers["connection"], "server" in headers) == (200, "close", False)
    assert json.loads(answer)["usage"]["total_tokens"] == 8
    assert await wire.closed()


async def test_chunked_request_body_is_served_by_aiohttp(base: str) -> None:
    wire = await Wire.open(base)
    head = b"POST /v1/completions HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: chunked\r\n\r\n"
    await wire.send(head + b"%x\r\n%b\r\n0\r\n\r\n" % (len(BODY), BODY))
    status, headers, _ = await wire.response()
    assert (status, "aiohttp" in headers["server"]) == (200, True)
    wire.close()


async def test_body_over_the_limit_is_refused_with_413_and_the_connection_closed(
    engines,
    start_router,  # type: ignore[no-untyped-def]
) -> None:
    fleet = await engines(1)
    doc = router_yaml([pool("p", "m", [fleet[0].url])], server={"client_max_size": 64})
    wire = await Wire.open(await start_router(doc))
    await wire.send(post(b"x" * 65))
    status, headers, body = await wire.response()
    assert (status, headers["connection"]) == (413, "close")
    assert "limit is 64" in json.loads(body)["error"]["message"]
    assert await wire.closed()


async def test_stop_answers_kept_alive_requests_with_close_and_lets_running_ones_finish(
    engines,
    tmp_path: Any,  # type: ignore[no-untyped-def]
) -> None:
    hold = asyncio.Event()
    (engine,) = await engines(1, hold=hold)
    path = tmp_path / "router.yaml"
    path.write_text(yaml.safe_dump(router_yaml([pool("p", "m", [engine.url])])))
    server = RouterServer(make_app(parse_settings(path.read_text()), path), 5.0)
    base = f"http://127.0.0.1:{await server.start('127.0.0.1', 0)}"
    for _ in range(200):  # until discovery has published the pool
        probe = await Wire.open(base)
        await probe.send(b"GET /ready HTTP/1.1\r\nHost: r\r\n\r\n")
        ready = (await probe.response())[0] == 200
        probe.close()
        if ready:
            break
        await asyncio.sleep(0.01)
    busy, idle, handed = await Wire.open(base), await Wire.open(base), await Wire.open(base)
    models = b"GET /v1/models HTTP/1.1\r\nHost: r\r\n\r\n"
    await handed.send(models)  # this connection now belongs to aiohttp
    status, headers, _ = await handed.response()
    assert (status, "connection" in headers) == (200, False)
    await busy.send(post())
    for _ in range(500):  # until the engine holds the request
        if engine.seen:
            break
        await asyncio.sleep(0.01)
    stopping = asyncio.create_task(server.stop())
    for _ in range(500):  # until it no longer accepts connections
        try:
            (await Wire.open(base)).close()
        except OSError:  # refused (or reset while the listening socket closes)
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the router kept accepting connections")
    await handed.send(models)  # aiohttp's connections answer with close too
    status, headers, _ = await handed.response()
    assert (status, headers["connection"]) == (200, "close")
    await idle.send(post())  # a request on a kept-alive connection while draining
    hold.set()  # both complete and are answered
    status, headers, _ = await idle.response()
    assert (status, headers["connection"]) == (200, "close")
    assert await idle.closed()
    status, _, body = await busy.response()
    assert (status, json.loads(body)["choices"][0]["text"]) == (200, engine.name)
    assert await busy.closed()
    await stopping


def bare_listener(serve: Any, **edge: Any) -> Listener:
    """A fast-path listener (no router) around ``serve``, no keys, 1 KiB bodies."""
    limits = Edge(EdgeSettings(**edge), KeyChecker(()), 1024, admin_keyed=False)
    return Listener(serve, lambda: None, frozenset({"/v1/completions"}), limits)


async def serve_with(serve: Any, **edge: Any) -> tuple[str, asyncio.Server]:
    """A bare fast-path listener (no router) around ``serve``."""
    listener = bare_listener(serve, **edge)
    server = await asyncio.get_running_loop().create_server(listener.protocol, "127.0.0.1", 0)
    return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", server


async def test_handler_failures_answer_500_or_cut_a_started_response() -> None:
    async def serve(path: str, raw: bytes, headers: Any, down: Any) -> None:
        if raw == b"late":
            await down.start(200, {"Content-Type": "text/event-stream"})
            await down.write(b"data: 1\n\n")
        raise RuntimeError("boom")

    base, server = await serve_with(serve)
    wire = await Wire.open(base)
    await wire.send(post(b"early"))
    status, _, body = await wire.response()
    assert (status, json.loads(body)["error"]["message"]) == (
        500,
        "internal router error; see router logs",
    )
    await wire.send(post(b"late"))  # same connection: it was kept alive after the 500
    head = await wire.reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    rest = await asyncio.wait_for(wire.reader.read(), 5)  # until the router closes
    assert rest == b"9\r\ndata: 1\n\n\r\n"  # cut: no last chunk, so the client sees a failure
    server.close()


async def test_keep_alive_connections_idle_past_the_timeout_are_closed() -> None:
    release = asyncio.Event()

    async def serve(path: str, raw: bytes, headers: Any, down: Any) -> None:
        if raw == b"wait":
            await release.wait()
        await down.whole(200, {"Content-Type": "text/plain"}, raw)

    listener = bare_listener(serve, keepalive_s=0.05)
    server = await asyncio.get_running_loop().create_server(listener.protocol, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    sweeper = asyncio.create_task(listener.sweep(every_s=0.01))
    idle, busy = await Wire.open(base), await Wire.open(base)
    await idle.send(post(b"hi"))
    assert (await idle.response())[2] == b"hi"
    await busy.send(post(b"wait"))
    assert await idle.closed()  # idle past 0.05 s
    await asyncio.sleep(0.1)
    release.set()  # a request running longer than the idle timeout is not cut
    assert (await busy.response())[2] == b"wait"
    sweeper.cancel()
    server.close()


async def test_a_client_that_does_not_read_holds_the_stream_back() -> None:
    written, chunk, total = [0], b"x" * 16384, 2000  # 32 MiB: more than any socket buffer

    async def serve(path: str, raw: bytes, headers: Any, down: Any) -> None:
        await down.start(200, {"Content-Type": "text/event-stream"})
        for _ in range(total):
            await down.write(chunk)
            written[0] += 1
        await down.end()

    base, server = await serve_with(serve)
    wire = await Wire.open(base)
    await wire.send(post(b"go"))
    last = -1
    for _ in range(100):  # until the writer has started and stopped moving
        await asyncio.sleep(0.05)
        if written[0] == last > 0:
            break
        last = written[0]
    assert 0 < written[0] < total  # paused on the transport's high-water mark
    status, _, body = await wire.response()  # reading lets it finish
    assert (status, len(body), written[0]) == (200, total * len(chunk), total)
    server.close()


async def test_shutdown_is_not_ready_at_once_but_serves_through_the_pre_stop_delay(
    engines,
    tmp_path: Any,  # type: ignore[no-untyped-def]
) -> None:
    (engine,) = await engines(1)
    path = tmp_path / "router.yaml"
    doc = router_yaml([pool("p", "m", [engine.url])], server={"probe_port": 0})
    path.write_text(yaml.safe_dump(doc))
    server = RouterServer(make_app(parse_settings(path.read_text()), path), 5.0)
    base = f"http://127.0.0.1:{await server.start('127.0.0.1', 0)}"
    probes = f"http://127.0.0.1:{server.probe_port}"

    async def get(url: str, route: str) -> int:
        wire = await Wire.open(url)
        await wire.send(f"GET {route} HTTP/1.1\r\nHost: r\r\n\r\n".encode())
        status = (await wire.response())[0]
        wire.close()
        return status

    for _ in range(200):  # until discovery has published the pool
        if await get(base, "/ready") == 200:
            break
        await asyncio.sleep(0.01)
    kept = await Wire.open(base)
    stopping = asyncio.create_task(server.shutdown(prestop_delay_s=1.0))
    await asyncio.sleep(0)
    assert (await get(base, "/ready"), await get(probes, "/ready")) == (503, 503)
    fresh = await Wire.open(base)  # still accepting during the pre-stop delay
    await fresh.send(post())
    status, headers, _ = await fresh.response()
    assert (status, "connection" in headers) == (200, False)  # still kept alive
    await stopping
    await kept.send(post())  # the connection was closed when the router stopped
    assert await kept.closed()


async def test_pipelined_bytes_over_the_buffer_budget_never_cut_the_running_answer() -> None:
    release = asyncio.Event()

    async def serve(path: str, raw: bytes, headers: Any, down: Any) -> None:
        await down.start(200, {"Content-Type": "text/event-stream"})
        await down.write(b"data: 1\n\n")
        if raw == b"first":
            await release.wait()
        await down.write(b"data: 2\n\n")
        await down.end()

    base, server = await serve_with(serve, max_buffered_bytes=600)
    wire = await Wire.open(base)
    await wire.send(post(b"first"))
    assert (await wire.reader.readuntil(b"data: 1\n\n\r\n")).startswith(b"HTTP/1.1 200")
    await wire.send(post(b"y" * 700))  # pipelined, over the whole budget
    await asyncio.sleep(0.1)
    release.set()
    rest = await wire.reader.readuntil(b"0\r\n\r\n")  # the first answer ends intact
    assert rest == b"9\r\ndata: 2\n\n\r\n0\r\n\r\n"
    status, _, body = await wire.response()  # then the pipelined request is served
    assert (status, body) == (200, b"data: 1\n\ndata: 2\n\n")
    server.close()
