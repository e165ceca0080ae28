"""Benchmark: time from InferencePool creation to all instances and pods created, and the
operator's resident memory. The operator runs as a real subprocess (``sagellm operator``)
against the in-process emulated API; pods are not started (no kubelet), only created.

Run from the repository root:  .venv/bin/python -m bench.operator_scale [--pools 100 --replicas 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sys
import time
from pathlib import Path

import aiohttp
import yaml

from tests.kubeemu import running_emulator

ROOT = Path(__file__).resolve().parents[1]
BASE = "/apis/sagellm.io/v1alpha1/namespaces/default"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def count(http: aiohttp.ClientSession, path: str) -> int:
    params = {"labelSelector": "app.kubernetes.io/managed-by=sagellm-operator"}
    return len((await (await http.get(path, params=params)).json())["items"])


async def converged(http: aiohttp.ClientSession, want: int) -> None:
    for _ in range(18000):  # polls every 0.2 s, gives up after an hour
        instances = await count(http, f"{BASE}/executioninstances")
        if instances >= want and await count(http, "/api/v1/namespaces/default/pods") >= want:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("the operator did not converge within an hour")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def ready(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within a minute")


async def scenario(pools: int, replicas: int) -> dict[str, float]:
    liveness = free_port()
    async with running_emulator() as emu, aiohttp.ClientSession(base_url=str(emu.url)) as http:
        for path in sorted((ROOT / "crds").glob("*.yaml")):
            await http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                            json=yaml.safe_load(path.read_text()))  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("sagellm")), "operator",
            "--api-server", str(emu.url),
            "--metrics-port", "0", "--liveness-port", str(liveness), "--resync-seconds", "30",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await ready(f"http://127.0.0.1:{liveness}/healthz")  # startup done, watching
            idle_rss = rss_mib(proc.pid)
            sample = yaml.safe_load((ROOT / "crds/samples/general-pool.yaml").read_text())
            sample["spec"]["roles"]["general"]["replicas"] = replicas
            start = time.monotonic()
            for i in range(pools):
                sample["metadata"] = {"name": f"bench-{i}", "namespace": "default"}
                await http.post(f"{BASE}/inferencepools", json=sample)
            want = pools * replicas
            await converged(http, want)
            elapsed = time.monotonic() - start
            return {"seconds": elapsed, "idle_rss_mib": idle_rss, "rss_mib": rss_mib(proc.pid)}
        finally:
            proc.terminate()
            await proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pools", type=int, action="append")
    parser.add_argument("--replicas", type=int, action="append")
    args = parser.parse_args()
    cases = list(zip(args.pools or [1, 100], args.replicas or [8, 4], strict=True))
    for pools, replicas in cases:
        result = asyncio.run(scenario(pools, replicas))
        print(f"{pools} pool(s) x {replicas} instances: all instances+pods created in "
              f"{result['seconds']:.1f}s; operator RSS {result['idle_rss_mib']:.0f} MiB idle, "
              f"{result['rss_mib']:.0f} MiB after", flush=True)  # fmt: skip


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
