"""Edge limits on both front ends (fast path and aiohttp), over raw sockets against a real
router: auth and size from the head before any body byte, no ``100 Continue`` for a refused
request, connection and buffered-byte budgets, read timeouts, keep-alive, admin access, API keys
reloaded from their file, probes on their own listener."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from router_fakes import pool, router_yaml
from test_fastpath import BODY, Wire, post

from sagellm_router.config import parse_settings
from sagellm_router.server import RouterServer, make_app

KEY = "sk-edge-test-0123456789"
AUTH = f"Authorization: Bearer {KEY}\r\n".encode()
Start = Callable[..., Awaitable[RouterServer]]


@pytest.fixture
async def router(engines: Any, tmp_path: Path) -> AsyncIterator[Start]:
    servers: list[RouterServer] = []
    (engine,) = await engines(1)

    async def start(**sections: Any) -> RouterServer:
        path = tmp_path / "router.yaml"
        path.write_text(yaml.safe_dump(router_yaml([pool("p", "m", [engine.url])], **sections)))
        server = RouterServer(make_app(parse_settings(path.read_text()), path), 5.0)
        server.port = await server.start("127.0.0.1", 0)  # type: ignore[attr-defined]
        servers.append(server)
        for _ in range(200):  # until discovery has published the pool
            wire = await Wire.open(url(server))
            await wire.send(b"GET /ready HTTP/1.1\r\nHost: r\r\n\r\n")
            ready = (await wire.response())[0] == 200
            wire.close()
            if ready:
                break
            await asyncio.sleep(0.01)
        return server

    yield start
    for server in servers:
        await server.stop()


def url(server: RouterServer, port: int | None = None) -> str:
    return f"http://127.0.0.1:{port or server.port}"  # type: ignore[attr-defined]


def keyed(path: Path, *keys: str) -> dict[str, Any]:
    path.write_text("".join(f"{k}\n" for k in keys))
    return {"api_keys_file": str(path), "reload_interval_s": 0.05}


async def answer(wire: Wire) -> tuple[int, dict[str, str], dict[str, Any]]:
    status, headers, body = await wire.response()
    return status, headers, json.loads(body)


def chunked_head(extra: bytes = b"") -> bytes:
    return b"POST /v1/completions HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: chunked\r\n" + extra


@pytest.mark.parametrize("extra", [b"", b"Expect: 100-continue\r\n"])
async def test_missing_key_is_401_from_the_head_before_any_body_byte(
    router: Start, tmp_path: Path, extra: bytes
) -> None:
    server = await router(auth=keyed(tmp_path / "keys", KEY))
    wire = await Wire.open(url(server))
    head = b"POST /v1/completions HTTP/1.1\r\nHost: r\r\nContent-Length: 50000000\r\n"
    await wire.send(head + extra + b"\r\n")  # 50 MB announced, not one body byte sent
    status, headers, body = await answer(wire)  # a 100 Continue first would fail here
    assert (status, headers["connection"], body["error"]["code"]) == (401, "close", 401)
    assert await wire.closed()


async def test_expect_with_a_body_over_the_limit_is_413_without_100_continue(
    router: Start, tmp_path: Path
) -> None:
    server = await router(auth=keyed(tmp_path / "keys", KEY), server={"client_max_size": 1000})
    wire = await Wire.open(url(server))
    head = b"POST /v1/completions HTTP/1.1\r\nHost: r\r\nContent-Length: 1001\r\n"
    await wire.send(head + AUTH + b"Expect: 100-continue\r\n\r\n")
    status, headers, body = await answer(wire)
    assert (status, headers["connection"]) == (413, "close")
    assert "limit is 1000" in body["error"]["message"]


async def test_expect_with_key_gets_100_continue_then_the_answer(
    router: Start, tmp_path: Path
) -> None:
    server = await router(auth=keyed(tmp_path / "keys", KEY))
    wire = await Wire.open(url(server))
    await wire.send(post(b"", extra=AUTH + b"Expect: 100-continue\r\n").replace(
        b"Content-Length: 0", f"Content-Length: {len(BODY)}".encode()))  # fmt: skip
    assert (await wire.reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 100")
    await wire.send(BODY)
    assert (await wire.response())[0] == 200


async def test_chunked_body_without_key_is_401_and_over_the_limit_is_413_while_streaming(
    router: Start, tmp_path: Path
) -> None:
    server = await router(auth=keyed(tmp_path / "keys", KEY), server={"client_max_size": 4096})
    anonymous = await Wire.open(url(server))
    await anonymous.send(chunked_head() + b"\r\n" + b"400\r\n" + b"x" * 1024 + b"\r\n")
    assert (await answer(anonymous))[0] == 401
    wire = await Wire.open(url(server))
    await wire.send(chunked_head(AUTH) + b"\r\n")
    for _ in range(5):  # 5 KiB in 1 KiB chunks, the body never ends: counted as it streams
        await wire.send(b"400\r\n" + b"x" * 1024 + b"\r\n")
    status, _, body = await answer(wire)
    assert status == 413
    assert "limit of 4096 bytes" in body["error"]["message"]


async def test_connections_beyond_the_cap_get_503(router: Start) -> None:
    server = await router(edge={"max_connections": 3})
    held = [await Wire.open(url(server)) for _ in range(3)]
    await held[0].send(b"GET /v1/models HTTP/1.1\r\nHost: r\r\n\r\n")  # handed to aiohttp
    assert (await held[0].response())[0] == 200
    extra = await Wire.open(url(server))
    status, headers, body = await answer(extra)
    assert (status, headers["retry-after"]) == (503, "1")
    assert "open connections" in body["error"]["message"]
    held[0].close()  # the aiohttp connection's slot is released when it closes
    for _ in range(200):
        again = await Wire.open(url(server))
        await again.send(post())
        if (await again.response())[0] == 200:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("a freed slot was never reused")


async def test_bytes_buffered_across_connections_are_capped(router: Start) -> None:
    server = await router(edge={"max_buffered_bytes": 3000})
    first, second = await Wire.open(url(server)), await Wire.open(url(server))
    partial = post(b"x" * 2000)[:-500]  # the head and 1500 of 2000 body bytes
    await first.send(partial)
    await second.send(partial)  # together over 3000 bytes held
    status, _, body = await answer(second)
    assert status == 503
    assert "buffered request bytes" in body["error"]["message"]
    await first.send(b"x" * 500)  # the first completes and is served
    assert (await first.response())[0] == 400  # "x..." is not JSON: validated, not refused


async def test_slow_head_and_slow_body_get_408(router: Start) -> None:
    server = await router(edge={"head_timeout_s": 0.2, "body_timeout_s": 0.2})
    slow_head, slow_body = await Wire.open(url(server)), await Wire.open(url(server))
    await slow_head.send(b"POST /v1/completions HTTP/1.1\r\nHost: r\r\n")
    await slow_body.send(post(b"x" * 100)[:-10])
    for wire, part in ((slow_head, "head"), (slow_body, "body")):
        status, headers, body = await answer(wire)  # the sweep runs every second
        assert (status, headers["connection"]) == (408, "close")
        assert body["error"]["message"] == f"request {part} not received within 0.2s"


async def test_idle_keep_alive_is_closed_on_aiohttp_connections_too(router: Start) -> None:
    server = await router(edge={"keepalive_s": 0.3})
    wire = await Wire.open(url(server))
    await wire.send(b"GET /v1/models HTTP/1.1\r\nHost: r\r\n\r\n")
    status, headers, _ = await wire.response()
    assert (status, "aiohttp" in headers["server"]) == (200, True)
    assert await wire.closed()


async def test_admin_needs_a_key_on_the_main_port_even_with_none_configured(
    router: Start,
) -> None:
    server = await router(admin={"enabled": True})
    wire = await Wire.open(url(server))
    body = b'{"policy": "priority"}'
    await wire.send(post(body, path="/admin/policy"))
    status, _, answer_body = await answer(wire)
    assert status == 401
    assert "admin.port" in answer_body["error"]["message"]


async def test_admin_on_its_own_listener_without_key_and_absent_from_the_main_port(
    router: Start, tmp_path: Path
) -> None:
    server = await router(admin={"enabled": True, "port": 0}, auth=keyed(tmp_path / "k", KEY))
    assert server.admin_port is not None
    wire = await Wire.open(url(server, server.admin_port))
    await wire.send(post(b'{"policy": "priority"}', path="/admin/policy"))
    status, _, body = await answer(wire)
    assert (status, body["pools"]["p"]["policy"]) == (200, "priority")
    main = await Wire.open(url(server))
    await main.send(post(b'{"policy": "fcfs"}', path="/admin/policy", extra=AUTH))
    assert (await main.response())[0] == 404


async def test_keys_reload_from_the_file_and_never_show(
    router: Start, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    keys = tmp_path / "keys"
    server = await router(auth=keyed(keys, KEY))

    async def status_with(key: str) -> tuple[int, bytes]:
        wire = await Wire.open(url(server))
        await wire.send(post(extra=f"Authorization: Bearer {key}\r\n".encode()))
        status, _, body = await wire.response()
        wire.close()
        return status, body

    assert (await status_with(KEY))[0] == 200
    rotated = "sk-rotated-9876543210"
    keys.write_text(f"# rotated\n{rotated}\n")
    for _ in range(500):  # the file is re-read every 0.05 s
        if (await status_with(KEY))[0] == 401:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the old key still worked after the file changed")
    assert (await status_with(rotated))[0] == 200
    status, body = await status_with("sk-wrong-key-5555")
    metrics = await Wire.open(url(server))
    await metrics.send(b"GET /metrics HTTP/1.1\r\nHost: r\r\n\r\n")
    exposed = (await metrics.response())[2]
    seen = body + exposed + caplog.text.encode()
    assert status == 401
    assert b"reloaded" in caplog.text.encode()
    for key in (KEY, rotated, "sk-wrong-key-5555"):
        assert key.encode() not in seen


async def test_probes_answer_on_their_listener_while_the_main_port_is_full(
    router: Start,
) -> None:
    server = await router(edge={"max_connections": 100}, server={"probe_port": 0})
    held: list[asyncio.StreamWriter] = []
    host, port = "127.0.0.1", server.port  # type: ignore[attr-defined]
    for _ in range(1000):  # 1,000 client connections, each holding a partial request
        _, writer = await asyncio.open_connection(host, port)
        writer.write(b"POST /v1/completions HTTP/1.1\r\n")
        held.append(writer)
    try:
        main = await Wire.open(url(server))
        await main.send(b"GET /health HTTP/1.1\r\nHost: r\r\n\r\n")
        assert (await main.response())[0] == 503  # the main port sheds beyond its cap
        for path in ("/health", "/ready", "/metrics"):
            probe = await Wire.open(url(server, server.probe_port))
            await probe.send(f"GET {path} HTTP/1.1\r\nHost: r\r\n\r\n".encode())
            assert (await probe.response())[0] == 200, path
            probe.close()
    finally:
        for writer in held:
            writer.close()
