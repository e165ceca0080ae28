"""Router soak: mixed streaming traffic through the router for a long time; RSS every minute.

Processes: ``--engines`` simulator engines (``sagellm sim --sim-profile tiny``) and the router
(``sagellm router``, static discovery of those engines, the default strategy) on 127.0.0.1.
The load generator (this process) sends about ``--rate`` requests/s, open loop, over keep-alive
connections: chat and completions, streaming (with usage) and not, prompts from a few shared
prefixes plus a unique tail, ``max_tokens`` 8-64, a request id header on every request. With
``--abandon F`` a fraction F of the streams is dropped by the client after its first chunk, and
``--bad F`` sends a fraction F of requests for an unknown model (404); both are counted apart and
are not errors.

Every minute it prints the router's RSS (``/proc/PID/status`` VmRSS) and the request counts;
at the end: RSS at the start of the last ``--window`` minutes and at the end, the growth over
that window in percent, and every error (status != 200, or a stream without ``[DONE]``).

Usage: .venv/bin/python bench/soak.py [--minutes 30] [--rate 18] [--window 20] [--engines 2]
This is a benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp

SAGELLM = str(Path(sys.executable).with_name("sagellm"))
PREFIXES = [f"system prompt {i}: you are a careful assistant. " * 8 for i in range(6)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_ok(url: str, timeout_s: float = 30.0) -> None:
    import urllib.request

    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout_s}s")


def start(engines: int, workdir: Path) -> tuple[list[subprocess.Popen[bytes]], int, int]:
    """Engines and router; returns (processes, router port, router pid)."""
    procs, urls = [], []
    for i in range(engines):
        port = free_port()
        argv = [SAGELLM, "sim", "soak-model", "--host", "127.0.0.1", "--port", str(port),
                "--sim-profile", "tiny", "--sim-time-scale", "0.2", "--sim-seed", str(i),
                "--sim-log-level", "warning"]  # fmt: skip
        procs.append(subprocess.Popen(argv))
        urls.append(f"http://127.0.0.1:{port}")
    for url in urls:
        wait_ok(f"{url}/health")
    port = free_port()
    config = {"server": {"host": "127.0.0.1", "port": port},
              "discovery": {"type": "static", "pools": [
                  {"name": "soak", "model": "soak-model",
                   "endpoints": [{"url": u} for u in urls]}]}}  # fmt: skip
    path = workdir / "router.yaml"
    path.write_text(json.dumps(config))
    router = subprocess.Popen([SAGELLM, "router", "--config", str(path), "--log-level", "warning"])
    procs.append(router)
    wait_ok(f"http://127.0.0.1:{port}/ready")
    return procs, port, router.pid


def request_body(rng: random.Random, n: int) -> tuple[str, dict[str, object]]:
    prompt = rng.choice(PREFIXES) + f"question {n}: {rng.random()}"
    common: dict[str, object] = {"model": "soak-model", "max_tokens": rng.randint(8, 64)}
    if rng.random() < 0.7:
        common |= {"stream": True, "stream_options": {"include_usage": True}}
    if rng.random() < 0.5:
        return "/v1/chat/completions", common | {"messages": [{"role": "user", "content": prompt}]}
    return "/v1/completions", common | {"prompt": prompt}


@dataclass
class Mix:
    abandon: float = 0.0  # fraction of streams the client drops after the first chunk
    bad: float = 0.0  # fraction of requests for an unknown model


async def one(
    session: aiohttp.ClientSession, base: str, n: int, rng: random.Random, tally: Counter[str],
    mix: Mix,
) -> None:  # fmt: skip
    path, body = request_body(rng, n)
    bad, abandon = rng.random() < mix.bad, rng.random() < mix.abandon
    if bad:
        body["model"] = f"no-such-model-{n % 7}"
    headers = {"X-Request-Id": f"soak-{n}", "X-Session-Id": f"s{n % 50}"}
    try:
        async with session.post(base + path, json=body, headers=headers) as resp:
            if abandon and body.get("stream") and resp.status == 200:
                await resp.content.readany()
                resp.close()  # the client goes away mid-stream
                tally["abandoned"] += 1
                return
            text = await resp.text()
            ok = resp.status == 200 and (not body.get("stream") or "data: [DONE]" in text)
            if bad:
                tally["404 as sent" if resp.status == 404 else f"bad: status {resp.status}"] += 1
                return
            cut = " cut" if resp.status == 200 else ""
            tally["ok" if ok else f"status {resp.status}{cut}"] += 1
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        tally[type(exc).__name__] += 1


async def load(
    base: str, pid: int, minutes: float, rate: float, fresh: bool, mix: Mix
) -> list[tuple[float, float]]:
    rng, tally = random.Random(1), Counter[str]()
    samples: list[tuple[float, float]] = [(0.0, rss_mb(pid))]
    print(f"min  0: rss {samples[0][1]:.1f} MB", flush=True)
    timeout = aiohttp.ClientTimeout(total=120)
    keep = {"force_close": True} if fresh else {"keepalive_timeout": 30.0}
    connector = aiohttp.TCPConnector(limit=64, **keep)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        begin, n, tasks = time.monotonic(), 0, set[asyncio.Task[None]]()
        next_sample = begin + 60
        while (now := time.monotonic()) < begin + minutes * 60:
            task = asyncio.create_task(one(session, base, n, rng, tally, mix))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
            if now >= next_sample:
                samples.append(((now - begin) / 60, rss_mb(pid)))
                print(f"min {samples[-1][0]:2.0f}: rss {samples[-1][1]:.1f} MB  {dict(tally)}",
                      flush=True)  # fmt: skip
                next_sample += 60
            await asyncio.sleep(rng.expovariate(rate))
        await asyncio.gather(*tasks)
    samples.append(((time.monotonic() - begin) / 60, rss_mb(pid)))
    print(f"end: {n} requests {dict(tally)}")
    return samples


def report(samples: list[tuple[float, float]], window: float) -> None:
    end_min, end_rss = samples[-1]
    start = min((s for s in samples if s[0] >= end_min - window), key=lambda s: s[0])
    growth = (end_rss - start[1]) / start[1] * 100
    print(f"rss over the last {end_min - start[0]:.1f} min: {start[1]:.1f} -> {end_rss:.1f} MB "
          f"({growth:+.2f} %); whole run {samples[0][1]:.1f} -> {end_rss:.1f} MB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=18.0, help="requests/s (Poisson)")
    parser.add_argument("--window", type=float, default=20.0, help="growth over the last N min")
    parser.add_argument("--engines", type=int, default=2)
    parser.add_argument("--fresh-connections", action="store_true", help="no keep-alive")
    parser.add_argument("--abandon", type=float, default=0.1, help="streams dropped mid-way")
    parser.add_argument("--bad", type=float, default=0.02, help="requests for unknown models")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        procs, port, pid = start(args.engines, Path(tmp))
        try:
            mix = Mix(args.abandon, args.bad)
            base = f"http://127.0.0.1:{port}"
            fresh = args.fresh_connections
            samples = asyncio.run(load(base, pid, args.minutes, args.rate, fresh, mix))
        finally:
            for proc in reversed(procs):
                proc.terminate()
                proc.wait()
    report(samples, args.window)


if __name__ == "__main__":
    main()
