"""Router edge under hostile and bursty load: memory, authenticated latency, probe latency.

Processes: one simulator engine (``sagellm sim --sim-profile tiny --sim-time-scale 0.01``) and
the router (``sagellm router``, static discovery, an API key file, ``server.probe_port`` unless
``--no-probe-port``) on 127.0.0.1; this process is the load generator.

Two phases, each reported separately:

* **slow** (``--slow 500``): authenticated requests in a closed loop (4 at a time) for
  ``--seconds``, first alone (idle), then while ``--slow`` connections without a key keep
  sending a POST head announcing a 4 MiB body and trickling body bytes (a connection the router
  closes is reopened after ``--reopen-s``). Reports the router's peak RSS
  (``/proc/PID/status`` VmRSS, sampled every 0.1 s), how many authenticated requests
  succeeded, and their p50/p99 idle vs under attack (target: RSS < 150 MB, p99 under attack
  < 3x idle).
* **burst** (``--burst 1000``): that many connections open at once, each sending one
  authenticated streaming request; meanwhile ``/health``, ``/ready`` and ``/metrics`` are
  requested every 0.1 s on the main port and on the probe port. Reports each probe's max and
  p99 latency and failures (target: under 1 s on the probe port).

The attackers and the probes run in child processes, so their latency is the router's, not
this process's event loop's.

Usage: .venv/bin/python bench/edge_load.py [--slow 500] [--burst 1000] [--seconds 10]
This is a benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from multiprocessing import Process, Queue
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak import SAGELLM, free_port, rss_mb, wait_ok

KEY = "bench-edge-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
BODY = {"model": "edge-model", "prompt": "hello", "max_tokens": 8}


def start(workdir: Path, probe_port: bool) -> tuple[list[subprocess.Popen[bytes]], int, int | None]:
    engine_port = free_port()
    engine = subprocess.Popen([SAGELLM, "sim", "edge-model", "--host", "127.0.0.1", "--port",
                               str(engine_port), "--sim-profile", "tiny", "--sim-time-scale",
                               "0.01", "--sim-log-level", "warning"])  # fmt: skip
    wait_ok(f"http://127.0.0.1:{engine_port}/health")
    (workdir / "keys").write_text(KEY + "\n")
    port, probe = free_port(), free_port() if probe_port else None
    server: dict[str, object] = {"host": "127.0.0.1", "port": port}
    if probe is not None:
        server["probe_port"] = probe
    endpoints = [{"url": f"http://127.0.0.1:{engine_port}"}]
    pools = [{"name": "p", "model": "edge-model", "endpoints": endpoints}]
    config = {"server": server, "auth": {"api_keys_file": str(workdir / "keys")},
              "discovery": {"type": "static", "pools": pools}}  # fmt: skip
    (workdir / "router.yaml").write_text(json.dumps(config))
    router = subprocess.Popen([SAGELLM, "router", "--config", str(workdir / "router.yaml"),
                               "--log-level", "warning"])  # fmt: skip
    wait_ok(f"http://127.0.0.1:{port}/ready")
    return [engine, router], port, probe


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def authenticated(base: str, seconds: float) -> tuple[list[float], int]:
    """Closed loop, 4 at a time: latencies (ms) of successes, and the failure count."""
    latencies: list[float] = []
    failures = 0
    end = time.monotonic() + seconds
    async with aiohttp.ClientSession(headers=AUTH) as session:

        async def loop() -> None:
            nonlocal failures
            while time.monotonic() < end:
                start = time.monotonic()
                try:
                    async with session.post(base + "/v1/completions", json=BODY) as resp:
                        await resp.read()
                        ok = resp.status == 200
                except (aiohttp.ClientError, OSError):
                    ok = False
                if ok:
                    latencies.append((time.monotonic() - start) * 1000)
                else:
                    failures += 1

        await asyncio.gather(*(loop() for _ in range(4)))
    return latencies, failures


async def slow_client(port: int, stop: asyncio.Event, opened: list[int], reopen_s: float) -> None:
    """Keeps one unauthenticated connection trickling a partial 4 MiB body; reopens it."""
    head = (b"POST /v1/completions HTTP/1.1\r\nHost: r\r\nContent-Type: application/json\r\n"
            b"Content-Length: 4194304\r\n\r\n")  # fmt: skip
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            opened[0] += 1
            writer.write(head + b"x" * 65536)
            while not stop.is_set() and not reader.at_eof():
                writer.write(b"x" * 4096)
                await writer.drain()
                with_timeout = asyncio.wait_for(reader.read(65536), 0.5)
                try:
                    if not await with_timeout:
                        break
                except TimeoutError:
                    pass
            writer.close()
        except OSError:
            pass
        await asyncio.sleep(reopen_s)


def attack(port: int, slow: int, seconds: float, reopen_s: float, out: Queue[int]) -> None:
    """Child process: ``slow`` attackers for ``seconds``; puts the number of connections."""

    async def run() -> None:
        stop, opened = asyncio.Event(), [0]
        tasks = [asyncio.create_task(slow_client(port, stop, opened, reopen_s))
                 for _ in range(slow)]  # fmt: skip
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks)
        out.put(opened[0])

    asyncio.run(run())


async def sample_rss(pid: int, stop: asyncio.Event, peak: list[float]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss_mb(pid))
        await asyncio.sleep(0.1)


async def slow_phase(port: int, pid: int, slow: int, seconds: float, reopen_s: float) -> None:
    base = f"http://127.0.0.1:{port}"
    idle, idle_fail = await authenticated(base, seconds)
    idle_rss = rss_mb(pid)
    stop, peak = asyncio.Event(), [idle_rss]
    opened: Queue[int] = Queue()
    sampler = asyncio.create_task(sample_rss(pid, stop, peak))
    child = Process(target=attack, args=(port, slow, seconds + 3.0, reopen_s, opened))
    child.start()
    await asyncio.sleep(2.0)  # let the attack build up
    attacked, attacked_fail = await authenticated(base, seconds)
    await asyncio.to_thread(child.join)
    stop.set()
    await sampler
    print(f"slow: {slow} unauthenticated attackers ({opened.get()} connections opened in all)")
    print(f"  router RSS idle {idle_rss:.1f} MB, peak under attack {peak[0]:.1f} MB")
    for name, lat, fail in (("idle", idle, idle_fail), ("attack", attacked, attacked_fail)):
        print(f"  authenticated {name:6}: {len(lat)} ok, {fail} failed, p50 "
              f"{pct(lat, 0.5):.1f} ms, p99 {pct(lat, 0.99):.1f} ms")  # fmt: skip
    print(f"  p99 under attack / idle: {pct(attacked, 0.99) / pct(idle, 0.99):.2f}x")


async def probe_loop(url: str, stop: asyncio.Event, out: list[float], fails: list[int]) -> None:
    timeout = aiohttp.ClientTimeout(total=20)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while not stop.is_set():
            start = time.monotonic()
            try:
                async with session.get(url, headers={"Connection": "close"}) as resp:
                    await resp.read()
                    (out.append((time.monotonic() - start) * 1000) if resp.status == 200
                     else fails.__setitem__(0, fails[0] + 1))  # fmt: skip
            except (aiohttp.ClientError, OSError, TimeoutError):
                fails[0] += 1
            await asyncio.sleep(0.1)


def probing(urls: dict[str, str], seconds: float, out: Queue[dict[str, object]]) -> None:
    """Child process: every probe every 0.1 s for ``seconds``; puts latencies and failures."""

    async def run() -> None:
        stop = asyncio.Event()
        results: dict[str, tuple[list[float], list[int]]] = {n: ([], [0]) for n in urls}
        tasks = [asyncio.create_task(probe_loop(url, stop, *results[name]))
                 for name, url in urls.items()]  # fmt: skip
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks)
        out.put({name: {"lat": lat, "failed": fails[0]} for name, (lat, fails) in results.items()})

    asyncio.run(run())


async def burst_phase(port: int, probe: int | None, burst: int) -> None:
    urls = {f"{label} {path}": f"http://127.0.0.1:{p}{path}"
            for label, p in (("main", port), ("probe", probe)) if p is not None
            for path in ("/health", "/ready", "/metrics")}  # fmt: skip
    results: Queue[dict[str, object]] = Queue()
    child = Process(target=probing, args=(urls, 12.0, results))
    child.start()
    await asyncio.sleep(1.0)
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=120)
    body = BODY | {"stream": True, "max_tokens": 64}
    statuses: dict[str, int] = {}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=AUTH) as s:

        async def one() -> None:
            try:
                async with s.post(f"http://127.0.0.1:{port}/v1/completions", json=body) as r:
                    await r.read()
                    key = str(r.status)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                key = type(exc).__name__
            statuses[key] = statuses.get(key, 0) + 1

        began = time.monotonic()
        await asyncio.gather(*(one() for _ in range(burst)))
        took = time.monotonic() - began
    await asyncio.to_thread(child.join)
    print(f"burst: {burst} connections at once, done in {took:.1f}s: {statuses}")
    for name, row in results.get().items():
        lat, failed = row["lat"], row["failed"]  # type: ignore[index]
        print(f"  {name:16} n={len(lat):4} p50 {pct(lat, 0.5):7.1f} ms  p99 "
              f"{pct(lat, 0.99):7.1f} ms  max {max(lat, default=float('nan')):7.1f} ms  "
              f"failed {failed}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slow", type=int, default=500)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--reopen-s", type=float, default=1.0, help="attacker reconnect delay")
    parser.add_argument("--no-probe-port", action="store_true", help="probe the main port only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        procs, port, probe = start(Path(tmp), not args.no_probe_port)
        try:
            if args.slow:
                asyncio.run(slow_phase(port, procs[-1].pid, args.slow, args.seconds, args.reopen_s))
            if args.burst:
                asyncio.run(burst_phase(port, probe, args.burst))
        finally:
            for proc in reversed(procs):
                proc.terminate()
                proc.wait()


if __name__ == "__main__":
    main()
