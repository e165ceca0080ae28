"""Router overhead benchmark: direct-to-engine vs through the router, per routing strategy.

Processes (2-core layout): the router is pinned to CPU 0; the fast fake engine and the load
generator share CPU 1. The engine is a raw-asyncio HTTP/1.1 server answering a small completion
on 4 ports (4 endpoints for the router) and a vLLM-sized ``/metrics`` page (our router scrapes
it every second, as deployed; ``--no-scrape`` turns that off). The load generator is a
raw-asyncio keep-alive client.

Two measurements per target:
* saturation: closed loop, 32 connections (like ``wrk -c 32``), ``--seconds`` long -> req/s (per
  router core) and the latency p50/p99 of those requests;
* latency: open loop at ``--rate`` req/s -> p50/p99; "added" = router minus direct.

Usage: .venv/bin/python bench/router_overhead.py [--seconds 5] [--rate 200]
       [--strategies round_robin,prefix_aware] [--baseline DIR]
``--baseline DIR`` also runs the router of another source tree (``git archive REV | tar -x -C
DIR``) as ``base/<strategy>``, in the same rounds: before/after comparisons on equal load.
This is a benchmark, not a test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sagellm_router.bench.fleet import free_ports

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded by file path
from overhead_engine import EngineProtocol, metrics_page

__all__ = ["EngineProtocol", "metrics_page"]  # the tests use them

ENGINE_PORTS = 4
ENGINE_SCRIPT = Path(__file__).resolve().with_name("overhead_engine.py")


def engine_argv(ports: list[int]) -> list[str]:
    """The fake engine's process, serving ``ports``."""
    return [sys.executable, str(ENGINE_SCRIPT), "--ports", ",".join(map(str, ports))]


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

    async def stream(self, body: bytes, gaps: list[float]) -> int:
        """One streaming request; appends the gaps between content chunks; returns events."""
        self.writer.write(
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200") or b"chunked" not in head.lower():
            raise RuntimeError(head.split(b"\r\n", 1)[0].decode())
        events, last = 0, None
        while size := int((await self.reader.readuntil(b"\r\n"))[:-2], 16):
            data = await self.reader.readexactly(size + 2)
            if n := data.count(b'" word"'):
                now = time.perf_counter()
                if last is not None:
                    gaps.append(now - last)
                events, last = events + n, now
        await self.reader.readexactly(2)
        return events


async def connect(port: int, n: int) -> list[Conn]:
    return [Conn(*await asyncio.open_connection("127.0.0.1", port)) for _ in range(n)]


async def closed_loop(
    port: int, seconds: float, conns: int, bodies: list[bytes], warmup_s: float = 0.5
) -> tuple[float, int, list[float]]:
    """Saturation: ``conns`` keep-alive connections, each sending its next request as soon as
    the answer is in (like ``wrk -c conns``). Returns req/s, requests done and their latencies
    (sorted, seconds). The first ``warmup_s`` of traffic is sent but not counted."""
    pool = await connect(port, conns)
    done, latencies = 0, []
    counting = False
    deadline = time.perf_counter() + warmup_s + seconds

    async def worker(conn: Conn, offset: int) -> None:
        nonlocal done
        i = offset
        while (start := time.perf_counter()) < deadline:
            await conn.request(bodies[i % len(bodies)])
            if counting:
                latencies.append(time.perf_counter() - start)
                done += 1
            i += conns

    workers = asyncio.gather(*(worker(c, i) for i, c in enumerate(pool)))
    await asyncio.sleep(warmup_s)
    counting, begin = True, time.perf_counter()
    await workers
    elapsed = time.perf_counter() - begin
    for c in pool:
        c.writer.close()
    return done / elapsed, done, sorted(latencies)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


async def stream_loop(
    port: int, seconds: float, conns: int, bodies: list[bytes]
) -> tuple[float, list[float]]:
    """Closed loop of streaming requests: relayed SSE events/s and the gaps between chunks."""
    pool = await connect(port, conns)
    events, gaps = 0, []
    deadline = time.perf_counter() + seconds

    async def worker(conn: Conn, offset: int) -> None:
        nonlocal events
        i = offset
        while time.perf_counter() < deadline:
            body = bodies[i % len(bodies)][:-1] + b', "stream": true}'
            n = await conn.stream(body, gaps)  # not `events += await`: that reads first
            events += n
            i += conns

    start = time.perf_counter()
    await asyncio.gather(*(worker(c, i) for i, c in enumerate(pool)))
    elapsed = time.perf_counter() - start
    for c in pool:
        c.writer.close()
    return events / elapsed, sorted(gaps)


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


# ---------------------------------------------------------------- orchestration
def wait_port(port: int, timeout: float = 20.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def _pin_cpu0() -> None:
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {0})


def start_router(
    target: str,
    engine_ports: list[int],
    workdir: Path,
    scrape: bool = True,
    baseline: Path | None = None,
) -> tuple[subprocess.Popen[bytes], int]:
    """``ours/<strategy>`` (sagellm router; ``scrape``: its default 1 s scrape of every
    engine's ``/metrics``), ``base/<strategy>`` (the same from the source tree ``baseline``)
    or ``peer/<policy>`` (vllm-router), on CPU 0."""
    kind, _, strategy = target.partition("/")
    (port,) = free_ports(1)
    urls = [f"http://127.0.0.1:{p}" for p in engine_ports]
    if kind == "peer":
        binary = Path(sys.executable).parent / "vllm-router"
        (metrics_port,) = free_ports(1)
        argv = [str(binary if binary.exists() else "vllm-router"), "--host", "127.0.0.1",
                "--port", str(port), "--policy", strategy, "--worker-urls", *urls,
                "--worker-startup-check-interval", "1", "--prometheus-host", "127.0.0.1",
                "--prometheus-port", str(metrics_port), "--log-level", "warning"]  # fmt: skip
    else:
        config = {
            "server": {"host": "127.0.0.1", "port": port},
            "discovery": {"type": "static", "pools": [{
                "name": "bench", "model": "bench", "routing": strategy,
                "endpoints": [{"url": u} for u in urls],
            }]},
            "scrape": {"enabled": scrape},
        }  # fmt: skip
        path = workdir / f"router-{strategy}.yaml"
        path.write_text(json.dumps(config))  # JSON is YAML
        code = (
            "from sagellm_router.cli import router; "
            f"router.main(['--config', {str(path)!r}, '--log-level', 'warning'])"
        )
        argv = [sys.executable, "-c", code]
    quiet = subprocess.DEVNULL if kind == "peer" else None
    env = None
    if kind == "base":  # its packages shadow this tree's (PYTHONPATH precedes the install)
        assert baseline is not None
        roots = [str(baseline / d) for d in ("core", "router", "simulator", "operator", "embed")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(roots)}
    proc = subprocess.Popen(argv, preexec_fn=_pin_cpu0, stdout=quiet, stderr=quiet, env=env)
    wait_port(port)
    if kind != "peer":
        wait_ready(port)
    time.sleep(2.0)  # both settle (vllm-router checks its workers) before being measured
    return proc, port


def wait_ready(port: int, timeout: float = 20.0) -> None:
    """Until our router's ``/ready`` answers 200 (discovery has found the endpoints)."""
    end = time.time() + timeout
    while time.time() < end:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if sock.recv(64).startswith(b"HTTP/1.1 200"):
                return
        time.sleep(0.05)
    raise RuntimeError(f"router on port {port} never became ready")


async def measure(
    port: int, args: argparse.Namespace, bodies: list[bytes], pid: int | None = None
) -> dict[str, float]:
    cpu0 = cpu_seconds(pid) if pid else 0.0
    rps, done, sat = await closed_loop(port, args.seconds, args.connections, bodies)
    row = {"rps": rps, "sat_p50_ms": pct(sat, 0.5), "sat_p99_ms": pct(sat, 0.99)}
    row["sat_ratio"] = row["sat_p99_ms"] / row["sat_p50_ms"]
    if pid:  # router CPU per request: steadier than req/s on a VM with noisy neighbours
        row["cpu_us"] = (cpu_seconds(pid) - cpu0) / max(done, 1) * 1e6
    cpu1 = cpu_seconds(pid) if pid else 0.0
    lat = await open_loop(port, args.rate, args.seconds, bodies)
    row |= {"p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99)}
    if pid:  # the same at the latency test's low rate (caches cold, every request wakes it)
        row["cpu_open_us"] = (cpu_seconds(pid) - cpu1) / max(len(lat), 1) * 1e6
    if args.stream:
        ev_s, gaps = await stream_loop(port, args.seconds, args.stream, bodies)
        row |= {"ev_s": ev_s, "itl_p50_ms": pct(gaps, 0.5), "itl_p99_ms": pct(gaps, 0.99)}
    return row


def run_target(
    target: str, ports: list[int], args: argparse.Namespace, bodies: list[bytes], tmp: Path
) -> dict[str, float]:
    if target == "direct":
        return asyncio.run(measure(ports[0], args, bodies))
    router, port = start_router(target, ports, tmp, not args.no_scrape, args.baseline)
    try:
        return asyncio.run(measure(port, args, bodies, router.pid))
    finally:
        router.terminate()
        router.wait()


COLUMNS = (("rps", "req/s (1 core)", 16, 0), ("cpu_us", "cpu us/req", 12, 0),
           ("sat_p50_ms", "sat p50", 9, 2), ("sat_p99_ms", "sat p99", 9, 2),
           ("sat_ratio", "p99/p50", 9, 2),
           ("p50_ms", "p50 ms", 10, 2), ("cpu_open_us", "cpu us @rate", 14, 0),
           ("p99_ms", "p99 ms", 10, 2), ("add_p50", "+p50 ms", 10, 2),
           ("add_p99", "+p99 ms", 10, 2), ("ev_s", "stream ev/s", 13, 0),
           ("itl_p50_ms", "itl p50", 9, 2), ("itl_p99_ms", "itl p99", 9, 2))  # fmt: skip


def print_rows(rows: list[tuple[str, dict[str, float]]]) -> None:
    cols = [c for c in COLUMNS if any(c[0] in r for _, r in rows)]
    print(f"{'target':<26}" + "".join(f"{title:>{w}}" for _, title, w, _ in cols))
    for name, r in rows:
        print(f"{name:<26}" + "".join(f"{r.get(k, float('nan')):>{w}.{d}f}" for k, _, w, d in cols))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--strategies", default="round_robin,prefix_aware,load_balanced,locality")
    parser.add_argument(
        "--peers", default="", help="vllm-router policies, e.g. round_robin,cache_aware"
    )
    parser.add_argument("--stream", type=int, default=0, help="also stream with N connections")
    parser.add_argument("--repeats", type=int, default=1, help="rounds, order alternating")
    parser.add_argument(
        "--no-scrape",
        action="store_true",
        help="our router without its periodic /metrics scrape of the engines",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="also run the router of this source tree as base/<strategy> (before/after)",
    )
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {1})  # load generator (and engine) off the router's core
    ports = free_ports(ENGINE_PORTS)
    engine = subprocess.Popen(engine_argv(ports))
    bodies = make_bodies(4096)
    kinds = ("ours", "base") if args.baseline is not None else ("ours",)
    targets = [f"{k}/{s}" for s in args.strategies.split(",") if s for k in kinds]
    targets += [f"peer/{p}" for p in args.peers.split(",") if p]
    runs: dict[str, list[dict[str, float]]] = {}
    rows: list[tuple[str, dict[str, float]]] = []
    try:
        wait_port(ports[-1])
        with tempfile.TemporaryDirectory() as tmp:
            for rep in range(args.repeats):
                order = ["direct", *(targets if rep % 2 == 0 else reversed(targets))]
                for target in order:
                    row = run_target(target, ports, args, bodies, Path(tmp))
                    runs.setdefault(target, []).append(row)
                    rows.append((f"{target}#{rep}", row))
    finally:
        engine.terminate()
        engine.wait()
    for name, row in rows:
        direct = runs["direct"][int(name.rsplit("#", 1)[1])]
        row["add_p50"], row["add_p99"] = (row[k] - direct[k] for k in ("p50_ms", "p99_ms"))
    print_rows(rows)
    if args.repeats > 1:
        print(f"\nmedians over {args.repeats} rounds:")
        print_rows(
            [(t, {k: statistics.median(r[k] for r in rs) for k in rs[0]}) for t, rs in runs.items()]
        )


if __name__ == "__main__":
    main()
