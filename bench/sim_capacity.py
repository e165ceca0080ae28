"""How many concurrent SSE streams one simulator process sustains on one core.

Starts ``sagellm sim`` as a subprocess pinned to one CPU core, drives it from this process
(pinned to another core when there is one) with N concurrent streaming completions per round,
and reports streamed tokens/s, per-stream token rate and the simulator's CPU use.

    .venv/bin/python bench/sim_capacity.py --concurrency 100 200 400 --max-tokens 200

A benchmark, not a test: numbers depend on the machine. Target: >= 200 concurrent streams at
>= 1000 streamed tokens/s in total.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import aiohttp

SAGELLM = str(Path(sys.executable).parent / "sagellm")


@dataclass
class Round:
    concurrency: int
    seconds: float
    tokens: int
    completed: int
    errors: int
    cpu_seconds: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds

    def row(self) -> str:
        per_stream = self.tokens_per_s / max(1, self.concurrency)
        cpu = 100 * self.cpu_seconds / self.seconds
        return (f"| {self.concurrency:>5} | {self.completed:>5} | {self.errors:>3} | "
                f"{self.tokens:>7} | {self.seconds:>6.2f} | {self.tokens_per_s:>8.0f} | "
                f"{per_stream:>6.1f} | {cpu:>5.0f}% |")  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_sim(args: argparse.Namespace, port: int) -> subprocess.Popen[bytes]:
    cmd = [SAGELLM, "sim", "bench-model", "--host", "127.0.0.1", "--port", str(port),
           "--sim-profile", args.profile, "--sim-time-scale", str(args.time_scale),
           "--max-num-seqs", str(max(args.concurrency)), "--sim-log-level", "warning"]  # fmt: skip
    if hasattr(os, "sched_setaffinity") and os.cpu_count():
        cmd = ["taskset", "-c", "0", *cmd]
    proc = subprocess.Popen(cmd)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).close()
            return proc
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("simulator did not become healthy")


async def one_stream(http: aiohttp.ClientSession, url: str, i: int, max_tokens: int) -> int:
    body = {"model": "bench-model", "prompt": f"stream {i}: " + "benchmark prompt text " * 30,
            "max_tokens": max_tokens, "ignore_eos": True, "stream": True}  # fmt: skip
    tokens = 0
    async with http.post(url, json=body) as resp:
        resp.raise_for_status()
        async for line in resp.content:
            if line.startswith(b"data: {"):
                tokens += len(json.loads(line[6:])["choices"][0]["text"].split())
    return tokens


async def run_round(port: int, pid: int, n: int, max_tokens: int) -> Round:
    url = f"http://127.0.0.1:{port}/v1/completions"
    conn = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as http:
        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        results = await asyncio.gather(
            *(one_stream(http, url, i, max_tokens) for i in range(n)), return_exceptions=True
        )
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    ok = [r for r in results if isinstance(r, int)]
    return Round(n, elapsed, sum(ok), len(ok), len(results) - len(ok), cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[100, 200, 400])
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--profile", default="llama-3.1-8b-h100")
    parser.add_argument("--time-scale", type=float, default=1.0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})  # keep the load generator off the simulator's core
    port = free_port()
    proc = start_sim(args, port)
    try:
        print(f"profile={args.profile} time_scale={args.time_scale} max_tokens={args.max_tokens}"
              " (simulator pinned to CPU 0)")  # fmt: skip
        print("| streams | done | err | tokens | secs | tokens/s | tok/s/stream | sim CPU |")
        print("|---|---|---|---|---|---|---|---|")
        for n in args.concurrency:
            print(asyncio.run(run_round(port, proc.pid, n, args.max_tokens)).row(), flush=True)
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
