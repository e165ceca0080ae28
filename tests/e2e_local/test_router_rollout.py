"""A rolling update of a 2-replica router under long streams and keep-alive traffic loses nothing.

The stack: emulated API + CRDs, fake kubelet running simulator processes (real time: ~9 ms per
token), the operator, and two real ``sagellm router`` processes in ``kubernetes`` discovery. In
front of them a ``Service`` as kube-proxy behaves: each new client connection goes to one ready
router (readiness polled on ``/ready``), and a connection stays with its router until it closes.

The rollout is what the chart's Deployment does (maxSurge 1, maxUnavailable 0): start A', wait
until it is ready, SIGTERM A; then the same for B. Meanwhile 20 streams of ~20 s each and
short keep-alive requests run; every stream must end with ``[DONE]`` and no request may fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from e2e import scenarios, traffic
from tests.e2e_local.local_cluster import (
    ROOT,
    SAGELLM,
    LocalCluster,
    free_port,
    kubeconfig,
    process,
    router_config,
    wait_http_ok,
)
from tests.kubeemu import FakeKubelet, running_emulator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
NAMESPACE, MODEL = "default", "tiny"
PRESTOP_S = 2.0  # > the Service's readiness period below, as the chart's values are
READY_POLL_S = 0.3
STREAM_TOKENS = 2200  # ~9 ms per token in real time: ~20 s streams


@dataclass
class Backend:
    url: str
    ready: bool = False
    connections: int = 0  # client connections open through the Service
    served: int = 0  # client connections ever routed here


@dataclass
class Service:
    """A TCP load balancer with kube-proxy's semantics over the router replicas."""

    backends: list[Backend] = field(default_factory=list)
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    def pick(self) -> Backend | None:
        ready = [b for b in self.backends if b.ready]
        return ready[next(self._turn) % len(ready)] if ready else None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        backend = self.pick()
        if backend is None:  # no ready endpoint: the connection is refused
            writer.close()
            return
        host, port = backend.url.removeprefix("http://").split(":")
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.close()
            return
        backend.connections += 1
        backend.served += 1
        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            backend.connections -= 1

    async def poll_readiness(self) -> None:
        timeout = aiohttp.ClientTimeout(total=1)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                for backend in self.backends:
                    try:
                        async with session.get(backend.url + "/ready") as resp:
                            backend.ready = resp.status == 200
                    except (aiohttp.ClientError, OSError, TimeoutError):
                        backend.ready = False
                await asyncio.sleep(READY_POLL_S)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@dataclass
class Router:
    """One ``sagellm router`` replica process."""

    proc: asyncio.subprocess.Process
    backend: Backend
    log: Path


async def start_router(name: str, workdir: Path, kube: Path, service: Service) -> Router:
    port = free_port()
    config = router_config(port, NAMESPACE, kube)
    config["server"] |= {"prestop_delay_s": PRESTOP_S, "shutdown_timeout_s": 60}
    path = workdir / f"router-{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    log = workdir / f"router-{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            SAGELLM, "router", "--config", str(path), "--log-level", "info",
            stdout=out, stderr=asyncio.subprocess.STDOUT, env=env,
        )  # fmt: skip
    backend = Backend(f"http://127.0.0.1:{port}")
    await wait_http_ok(f"{backend.url}/ready", log, timeout_s=60)
    service.backends.append(backend)
    for _ in range(100):  # until the Service has seen it ready
        if backend.ready:
            break
        await asyncio.sleep(0.1)
    return Router(proc, backend, log)


async def replace(old: Router, name: str, workdir: Path, kube: Path, service: Service) -> Router:
    """The Deployment's step: the new replica ready first, then SIGTERM to the old one."""
    new = await start_router(name, workdir, kube, service)
    assert old.backend.connections > 0, "the replica being replaced held no connection"
    old.proc.send_signal(signal.SIGTERM)
    return new


@dataclass
class ShortTraffic:
    """Workers sending short chat requests back to back over keep-alive connections."""

    base: str
    statuses: Counter[str] = field(default_factory=Counter)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def worker(self, session: aiohttp.ClientSession) -> None:
        body = {"model": MODEL, "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]}
        while not self.stop.is_set():
            try:
                async with session.post(f"{self.base}/v1/chat/completions", json=body) as resp:
                    await resp.read()
                    self.statuses[str(resp.status)] += 1
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                self.statuses[f"{type(exc).__name__}: {exc}"] += 1
            await asyncio.sleep(0.02)

    async def run(self, workers: int = 6) -> None:
        connector = aiohttp.TCPConnector(limit=workers)
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.gather(*(self.worker(session) for _ in range(workers)))


@contextlib.asynccontextmanager
async def stack(workdir: Path) -> AsyncIterator[tuple[LocalCluster, Path, Service, str]]:
    """Emulator, CRDs, kubelet, operator; a Service on a free port (routers added later)."""
    async with running_emulator() as emu, aiohttp.ClientSession(base_url=str(emu.url)) as http:
        for crd in sorted((ROOT / "crds").glob("*.yaml")):
            path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
            async with http.post(path, json=yaml.safe_load(crd.read_text())) as resp:
                assert resp.status == 201, await resp.text()
        kube = workdir / "kubeconfig.yaml"
        kube.write_text(yaml.safe_dump(kubeconfig(str(emu.url).rstrip("/"), NAMESPACE)))
        liveness = free_port()
        operator = [SAGELLM, "operator", "--api-server", str(emu.url), "--namespace", NAMESPACE,
                    "--metrics-port", "0", "--liveness-port", str(liveness),
                    "--resync-seconds", "1"]  # fmt: skip
        service = Service()
        server = await asyncio.start_server(service.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        poller = asyncio.create_task(service.poll_readiness())
        # Pod IPs from a random offset: other local stacks on this machine use the first ones.
        first_ip = random.randrange(2_000, 60_000)
        kubelet = FakeKubelet(str(emu.url), namespace=NAMESPACE, simulate=True, _next_ip=first_ip)
        try:
            async with kubelet, process("operator", operator, workdir) as log:
                await wait_http_ok(f"http://127.0.0.1:{liveness}/healthz", log)
                url = f"http://127.0.0.1:{port}"
                yield LocalCluster(http, url, NAMESPACE), kube, service, url
        finally:
            poller.cancel()
            server.close()


def pool_manifest() -> dict[str, Any]:
    sample = yaml.safe_load((ROOT / "crds" / "samples" / "simulator-pool.yaml").read_text())
    sample["spec"]["engine"]["extraArgs"] = ["--sim-time-scale", "1.0"]
    sample["spec"].pop("scheduling", None)
    return dict(sample)


async def test_router_rollout_loses_no_stream_and_no_request(tmp_path: Path) -> None:
    async with stack(tmp_path) as (cluster, kube, service, url):
        await scenarios.deploy_pool(cluster, pool_manifest(), timeout_s=90)
        a = await start_router("a", tmp_path, kube, service)
        b = await start_router("b", tmp_path, kube, service)
        await scenarios.serve_openai(cluster, MODEL, timeout_s=30)
        streams = traffic.LongStreams(url, MODEL, count=20, max_tokens=STREAM_TOKENS)
        short = ShortTraffic(url)
        streaming = asyncio.create_task(streams.run())
        chatter = asyncio.create_task(short.run())
        routers = [a, b]
        try:
            await asyncio.wait_for(streams.all_streaming.wait(), 60)
            began = time.monotonic()
            a2 = await replace(a, "a2", tmp_path, kube, service)
            routers.append(a2)
            b2 = await replace(b, "b2", tmp_path, kube, service)
            routers.append(b2)
            for old in (a, b):
                assert await asyncio.wait_for(old.proc.wait(), 90) == 0, old.log.read_text()
            await asyncio.wait_for(streaming, 120)
            await asyncio.sleep(1.0)  # short traffic keeps flowing through the new replicas
        finally:
            short.stop.set()
            await chatter
            for router in routers:
                if router.proc.returncode is None:
                    router.proc.terminate()
                    await router.proc.wait()
        print(f"\nrouter rollout: {streams.summary()}, short requests: {dict(short.statuses)}")
        traffic.check_streams(streams, "a router rollout", min_seconds=15)
        assert time.monotonic() - began > 10, "the rollout did not overlap the streams"
        failures = {k: n for k, n in short.statuses.items() if k != "200"}
        assert not failures, f"short requests failed during the rollout: {failures}"
        assert short.statuses["200"] > 50, short.statuses
        assert a2.backend.served > 0
        assert b2.backend.served > 0
