"""Router overhead benchmark: direct-to-engine vs through the router, per routing strategy.

Processes (2-core layout): the router is pinned to CPU 0; the fast fake engine and the load
generator share CPU 1. The engine is a raw-asyncio HTTP/1.1 server answering a small completion
on 4 ports (4 endpoints for the router). The load generator is a raw-asyncio keep-alive client.

Two measurements per target:
* throughput: closed loop, 32 connections, ``--seconds`` long -> req/s (per router core);
* latency: open loop at ``--rate`` req/s -> p50/p99; "added" = router minus direct.

Usage: .venv/bin/python bench/router_overhead.py [--seconds 5] [--rate 200]
       [--strategies round_robin,prefix_aware]
This is a benchmark, not a test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENGINE_PORTS = 4
RESPONSE = json.dumps({
    "id": "cmpl-1", "object": "text_completion", "model": "bench",
    "choices": [{"index": 0, "text": "hello world", "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 16, "completion_tokens": 2, "total_tokens": 18},
}).encode()  # fmt: skip


# ---------------------------------------------------------------- fake engine (subprocess)
class EngineProtocol(asyncio.Protocol):
    """Minimal HTTP/1.1 keep-alive server: every request gets RESPONSE (or 200 on GET)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].lower()
            length = 0
            marker = head.find(b"content-length:")
            if marker >= 0:
                length = int(head[marker + 15 :].split(b"\r\n", 1)[0])
            if len(self.buffer) < head_end + 4 + length:
                return
            self.buffer = self.buffer[head_end + 4 + length :]
            body = RESPONSE if head.startswith(b"post") else b"# no metrics\n"
            self.transport.write(  # type: ignore[attr-defined]
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )


async def engine_main(ports: list[int]) -> None:
    loop = asyncio.get_running_loop()
    for port in ports:
        await loop.create_server(EngineProtocol, "127.0.0.1", port, backlog=1024)
    await asyncio.Event().wait()


# ---------------------------------------------------------------- load generator
def make_bodies(n: int, seed: int = 1) -> list[bytes]:
    """Prompts sharing 16 long prefixes (so prefix_aware has real work to do)."""
    rng = random.Random(seed)
    prefixes = [f"System prompt {i}: " + "lorem ipsum dolor sit amet " * 30 for i in range(16)]
    bodies = []
    for i in range(n):
        prompt = rng.choice(prefixes) + f"question {i} " * 4
        bodies.append(json.dumps({"model": "bench", "prompt": prompt, "max_tokens": 2}).encode())
    return bodies


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def request(self, body: bytes) -> None:
        self.writer.write(
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.split(b"\r\n", 1)[0].decode())
        lower = head.lower()
        marker = lower.find(b"content-length:")
        await self.reader.readexactly(int(lower[marker + 15 :].split(b"\r\n", 1)[0]))


async def connect(port: int, n: int) -> list[Conn]:
    return [Conn(*await asyncio.open_connection("127.0.0.1", port)) for _ in range(n)]


async def closed_loop(port: int, seconds: float, conns: int, bodies: list[bytes]) -> float:
    pool = await connect(port, conns)
    for c in pool:  # warm-up
        await c.request(bodies[0])
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(conn: Conn, offset: int) -> None:
        nonlocal done
        i = offset
        while time.perf_counter() < deadline:
            await conn.request(bodies[i % len(bodies)])
            done += 1
            i += conns

    start = time.perf_counter()
    await asyncio.gather(*(worker(c, i) for i, c in enumerate(pool)))
    elapsed = time.perf_counter() - start
    for c in pool:
        c.writer.close()
    return done / elapsed


async def open_loop(port: int, rate: float, seconds: float, bodies: list[bytes]) -> list[float]:
    pool = await connect(port, 32)
    free = list(pool)
    latencies: list[float] = []
    for c in pool:
        await c.request(bodies[0])

    async def one(i: int) -> None:
        conn = free.pop()
        start = time.perf_counter()
        await conn.request(bodies[i % len(bodies)])
        latencies.append(time.perf_counter() - start)
        free.append(conn)

    tasks = []
    begin = time.perf_counter()
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, begin + i / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    for c in pool:
        c.writer.close()
    return sorted(latencies)


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


# ---------------------------------------------------------------- orchestration
def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def wait_port(port: int, timeout: float = 20.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def start_router(
    strategy: str, engine_ports: list[int], workdir: Path
) -> tuple[subprocess.Popen[bytes], int]:
    (port,) = free_ports(1)
    config = {
        "server": {"host": "127.0.0.1", "port": port},
        "discovery": {"type": "static", "pools": [{
            "name": "bench", "model": "bench", "routing": strategy,
            "endpoints": [{"url": f"http://127.0.0.1:{p}"} for p in engine_ports],
        }]},
        "scrape": {"enabled": False},
    }  # fmt: skip
    path = workdir / f"router-{strategy}.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    code = (
        "import os, sys; os.sched_setaffinity(0, {0}); "
        "from sagellm_router.cli import router; "
        f"router.main(['--config', {str(path)!r}, '--log-level', 'warning'], standalone_mode=True)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    wait_port(port)
    return proc, port


async def measure(port: int, args: argparse.Namespace, bodies: list[bytes]) -> dict[str, float]:
    rps = await closed_loop(port, args.seconds, args.connections, bodies)
    lat = await open_loop(port, args.rate, args.seconds, bodies)
    return {"rps": rps, "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--strategies", default="round_robin,prefix_aware,load_balanced,locality")
    parser.add_argument("--engine", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ports", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        asyncio.run(engine_main([int(p) for p in args.ports.split(",")]))
        return
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {1})  # load generator (and engine) off the router's core
    ports = free_ports(ENGINE_PORTS)
    engine = subprocess.Popen(
        [sys.executable, __file__, "--engine", "--ports", ",".join(map(str, ports))]
    )
    bodies = make_bodies(4096)
    rows: list[tuple[str, dict[str, float]]] = []
    try:
        wait_port(ports[-1])
        direct = asyncio.run(measure(ports[0], args, bodies))
        rows.append(("direct", direct))
        with tempfile.TemporaryDirectory() as tmp:
            for strategy in args.strategies.split(","):
                router, port = start_router(strategy, ports, Path(tmp))
                try:
                    rows.append((f"router/{strategy}", asyncio.run(measure(port, args, bodies))))
                finally:
                    router.terminate()
                    router.wait()
    finally:
        engine.terminate()
        engine.wait()
    header = ("req/s (1 core)", "p50 ms", "p99 ms", "+p50 ms", "+p99 ms")
    print(
        f"{'target':<24}"
        + "".join(f"{h:>16}" if i == 0 else f"{h:>10}" for i, h in enumerate(header))
    )
    for name, r in rows:
        print(
            f"{name:<24}{r['rps']:>16.0f}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}"
            f"{r['p50_ms'] - direct['p50_ms']:>10.2f}{r['p99_ms'] - direct['p99_ms']:>10.2f}"
        )


if __name__ == "__main__":
    main()
