"""A running operator against the emulator, with a fake kubelet, for integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from sagellm_core.api import labels as L
from sagellm_operator.cli import run
from sagellm_operator.metrics import Metrics
from sagellm_operator.settings import OperatorSettings, PodDefaults
from tests.kubeemu import FakeKubelet, KubeEmulator, PodBehaviour, running_emulator

ROOT = Path(__file__).resolve().parents[3]
NS = "default"
BASE = f"/apis/{L.GROUP}/{L.VERSION}/namespaces/{NS}"
MERGE = {"Content-Type": "application/merge-patch+json"}
Obj = dict[str, Any]


def sample(name: str, pool_name: str) -> Obj:
    obj: Obj = yaml.safe_load((ROOT / "crds/samples" / f"{name}.yaml").read_text())
    obj["metadata"] = {"name": pool_name, "namespace": NS}
    return obj


@dataclass
class Cluster:
    emu: KubeEmulator
    http: aiohttp.ClientSession
    kubelet: FakeKubelet

    async def create_pool(self, pool: Obj) -> Obj:
        resp = await self.http.post(f"{BASE}/inferencepools", json=pool)
        assert resp.status == 201, await resp.text()
        body: Obj = await resp.json()
        return body

    async def patch_pool(self, name: str, patch: Obj) -> None:
        resp = await self.http.patch(f"{BASE}/inferencepools/{name}", json=patch, headers=MERGE)
        assert resp.status == 200, await resp.text()

    async def get(self, path: str) -> Obj | None:
        resp = await self.http.get(path)
        return None if resp.status == 404 else dict(await resp.json())

    async def pool(self, name: str) -> Obj:
        pool = await self.get(f"{BASE}/inferencepools/{name}")
        assert pool is not None
        return pool

    async def items(self, path: str, selector: str = "") -> list[Obj]:
        params = {"labelSelector": selector} if selector else {}
        body = await (await self.http.get(path, params=params)).json()
        return list(body["items"])

    async def instances(self, pool: str) -> list[Obj]:
        return await self.items(f"{BASE}/executioninstances", f"{L.LABEL_POOL}={pool}")

    async def pods(self, selector: str) -> list[Obj]:
        return await self.items(f"/api/v1/namespaces/{NS}/pods", selector)

    async def events(self, name: str) -> list[Obj]:
        events = await self.items(f"/api/v1/namespaces/{NS}/events")
        return [e for e in events if e["involvedObject"]["name"] == name]


@contextlib.asynccontextmanager
async def operator_running(emu: KubeEmulator, **overrides: Any) -> AsyncIterator[Metrics]:
    """The operator in its own thread and event loop.

    kopf treats every task of its loop as its own and, on stop, waits 5 s for them and then
    cancels them; sharing the test's loop would cost every test 5 s and cancel the emulator's
    tasks. Its own loop keeps both apart.
    """
    drain = overrides.pop("drain", 1)
    pods = PodDefaults(discovery_bound_seconds=overrides.pop("bound", 0.2))
    settings = OperatorSettings(
        api_server=str(emu.url), metrics_port=None, liveness_port=None,
        resync_seconds=overrides.pop("resync", 2.0), drain_timeout_seconds=drain,
        drain_poll_seconds=overrides.pop("poll", 0.2), pods=pods, **overrides,
    )  # fmt: skip
    metrics = Metrics()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    task = loop.create_task(run(settings, metrics, ready=ready))
    thread = threading.Thread(target=_run_until_cancelled, args=(loop, task), daemon=True)
    thread.start()
    try:
        # a test that ends sooner would cancel kopf mid-start-up, leaving coroutines unawaited
        if not await asyncio.to_thread(_started, ready, thread, 60.0):
            raise RuntimeError("the operator stopped, or did not start within 60 s")
        yield metrics
    finally:
        # Cancelling (rather than kopf's stop flag) ends every task at once; a stop flag
        # waits 5 s for timers spawned by events that arrived while stopping.
        loop.call_soon_threadsafe(task.cancel)
        await asyncio.to_thread(thread.join, 30)
        loop.close()


def _started(ready: threading.Event, thread: threading.Thread, within: float) -> bool:
    """Wait until ``ready`` is set; False if ``thread`` (the operator's loop) ended first."""
    deadline = time.monotonic() + within
    while not ready.wait(0.05):
        if not thread.is_alive() or time.monotonic() > deadline:
            return False
    return True


def _run_until_cancelled(loop: asyncio.AbstractEventLoop, task: asyncio.Task[None]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        loop.run_until_complete(task)


@contextlib.asynccontextmanager
async def cluster(
    behaviour: Callable[[Obj], PodBehaviour] | None = None,
    lws: bool = False,
    simulate: bool = False,
) -> AsyncIterator[Cluster]:
    """The emulator with the CRDs and a fake kubelet (``simulate``: pods run the simulator)."""
    async with running_emulator() as emu, aiohttp.ClientSession(base_url=str(emu.url)) as http:
        crds = sorted((ROOT / "crds").glob("*.yaml"))
        if lws:
            crds.append(Path(__file__).with_name("lws-crd.yaml"))
        for path in crds:
            crd = yaml.safe_load(path.read_text())
            resp = await http.post(
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd
            )
            assert resp.status == 201, await resp.text()
        kubelet = FakeKubelet(str(emu.url), behaviour=behaviour or (lambda pod: PodBehaviour()),
                              simulate=simulate)  # fmt: skip
        async with kubelet:
            yield Cluster(emu, http, kubelet)
