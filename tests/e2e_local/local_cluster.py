"""The local backend of the shared e2e scenarios (``e2e/scenarios.py``).

Everything runs on this machine: the emulated Kubernetes API (in the test's event loop), the
real operator (``sagellm operator`` subprocess), a fake kubelet in simulate mode (one real
``python -m sagellm_sim`` process per pod on its own loopback address 127.R.X.Y:8000, reported
as the pod IP) and the real router (``sagellm router`` subprocess) in ``kubernetes`` discovery
mode, reading the emulator through a generated kubeconfig.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.kubeemu import FakeKubelet, running_emulator
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
GROUP_PATH = "/apis/sagellm.io/v1alpha1"
MERGE = {"Content-Type": "application/merge-patch+json"}
SAGELLM = str(Path(sys.executable).with_name("sagellm"))
Obj = dict[str, Any]
DISCOVERY_BOUND_S = 1.0
"""D for the local stack: the router watches pools on the same machine (delivery in ms)."""


class ApiError(RuntimeError):
    """The emulated API answered with an unexpected status."""


@dataclass
class LocalCluster:
    """``scenarios.Cluster`` over HTTP to the emulated API server."""

    http: aiohttp.ClientSession
    router_url: str
    namespace: str = "default"
    poll_interval_s: float = 0.1
    logs: dict[str, Path] = field(default_factory=dict)
    kubelet: FakeKubelet | None = None
    """The fake kubelet running the pods (its ``terminations`` say how each pod ended)."""

    def _path(self, plural: str, name: str = "") -> str:
        base = "/api/v1" if plural in ("pods", "events") else GROUP_PATH
        path = f"{base}/namespaces/{self.namespace}/{plural}"
        return f"{path}/{name}" if name else path

    async def _call(self, method: str, path: str, ok: tuple[int, ...], **kw: Any) -> Obj | None:
        async with self.http.request(method, path, **kw) as resp:
            if resp.status == 404 and 404 in ok:
                return None
            if resp.status not in ok:
                raise ApiError(f"{method} {path}: {resp.status} {await resp.text()}")
            body: Obj = await resp.json()
            return body

    async def apply(self, manifest: Obj) -> None:
        plural = manifest["kind"].lower() + "s"
        name = manifest["metadata"]["name"]
        created = await self._call("POST", self._path(plural), (201, 409), json=manifest)
        if created is not None and created.get("kind") == "Status":  # 409: it exists
            patch = {k: v for k, v in manifest.items() if k in ("spec", "metadata")}
            await self.patch(plural, name, patch)

    async def get(self, plural: str, name: str) -> Obj | None:
        return await self._call("GET", self._path(plural, name), (200, 404))

    async def list(self, plural: str, selector: str = "") -> list[Obj]:
        params = {"labelSelector": selector} if selector else {}
        body = await self._call("GET", self._path(plural), (200,), params=params)
        return list((body or {}).get("items", []))

    async def patch(self, plural: str, name: str, patch: Obj) -> None:
        path = self._path(plural, name)
        await self._call("PATCH", path, (200,), data=json.dumps(patch), headers=MERGE)

    async def delete(self, plural: str, name: str) -> None:
        await self._call("DELETE", self._path(plural, name), (200, 404))


def kubeconfig(api_url: str, namespace: str) -> Obj:
    """A kubeconfig for the emulator: plain HTTP, no credentials."""
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
        "clusters": [{"name": "emulator", "cluster": {"server": api_url}}],
        "users": [{"name": "emulator", "user": {}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "emulator",
                                                       "namespace": namespace}}],
    }  # fmt: skip


def router_config(port: int, namespace: str, kubeconfig_path: Path) -> Obj:
    discovery = {"type": "kubernetes", "namespace": namespace, "kubeconfig": str(kubeconfig_path),
                 "backoff_initial_s": 0.2, "backoff_max_s": 1}  # fmt: skip
    return {
        "server": {"host": "127.0.0.1", "port": port, "shutdown_timeout_s": 1},
        "discovery": discovery,
        "health": {"probe_interval_s": 0.5},
        "scrape": {"interval_s": 0.5},
    }


@contextlib.asynccontextmanager
async def process(name: str, argv: list[str], workdir: Path) -> AsyncIterator[Path]:
    """A subprocess with its output in ``workdir/<name>.log``; terminated on exit."""
    log = workdir / f"{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=out, stderr=asyncio.subprocess.STDOUT, env=env
        )
        try:
            yield log
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def wait_http_ok(url: str, log: Path, timeout_s: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with aiohttp.ClientSession() as session:
        while asyncio.get_running_loop().time() < deadline:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} did not answer 200 within {timeout_s}s; see {log}")


@contextlib.asynccontextmanager
async def local_cluster(
    workdir: Path,
    namespace: str = "default",
    router: Obj | None = None,
    operator_args: tuple[str, ...] = (),
) -> AsyncIterator[LocalCluster]:
    """Emulated API + CRDs, fake kubelet (simulate mode), operator and router processes;
    ``router`` adds to (or replaces) sections of the router's settings; ``operator_args`` are
    added to the operator's command line (``{router}`` in one stands for the router's URL)."""
    async with running_emulator() as emu, aiohttp.ClientSession(base_url=str(emu.url)) as http:
        for path in sorted((ROOT / "crds").glob("*.yaml")):
            crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
            async with http.post(crds, json=yaml.safe_load(path.read_text())) as resp:
                if resp.status != 201:
                    raise ApiError(f"CRD {path.name}: {resp.status} {await resp.text()}")
        config_path = workdir / "kubeconfig.yaml"
        config_path.write_text(yaml.safe_dump(kubeconfig(str(emu.url).rstrip("/"), namespace)))
        port, liveness = free_port(), free_port()
        router_path = workdir / "router.yaml"
        settings = router_config(port, namespace, config_path)
        for section, values in (router or {}).items():
            settings[section] = {**settings.get(section, {}), **values}
        router_path.write_text(yaml.safe_dump(settings))
        operator_argv = [SAGELLM, "operator", "--api-server", str(emu.url), "--namespace",
                         namespace, "--metrics-port", "0", "--liveness-port", str(liveness),
                         "--resync-seconds", "1", "--drain-timeout", "30",
                         "--discovery-bound", str(DISCOVERY_BOUND_S),
                         "--drain-poll", "0.5",
                         *(a.replace("{router}", f"http://127.0.0.1:{port}")
                           for a in operator_args)]  # fmt: skip
        router_argv = [SAGELLM, "router", "--config", str(router_path), "--log-level", "warning"]
        kubelet = FakeKubelet(str(emu.url), namespace=namespace, simulate=True)
        async with (
            kubelet,
            process("operator", operator_argv, workdir) as operator_log,
            process("router", router_argv, workdir) as router_log,
        ):
            url = f"http://127.0.0.1:{port}"
            await wait_http_ok(f"http://127.0.0.1:{liveness}/healthz", operator_log)
            await wait_http_ok(f"{url}/health", router_log)
            logs = {"operator": operator_log, "router": router_log}
            yield LocalCluster(http, url, namespace, logs=logs, kubelet=kubelet)


@dataclass
class FleetSample:
    """One look at a pool: seconds since the sampler started, the General role's
    ``spec.roles.general.replicas`` and its ExecutionInstances (all of them hold a GPU:
    starting, ready or draining) and how many of those are Ready."""

    t: float
    replicas: int
    instances: int
    ready: int


@dataclass
class FleetSampler:
    """Samples a pool's replicas and instances every ``interval_s`` until ``stop`` is set."""

    cluster: LocalCluster
    pool: str
    interval_s: float = 0.3
    samples: list[FleetSample] = field(default_factory=list)

    async def sample(self, t: float) -> FleetSample:
        found = await self.cluster.list("executioninstances", f"sagellm.io/pool={self.pool}")
        pool = await self.cluster.get("inferencepools", self.pool) or {"spec": {"roles": {}}}
        general = pool["spec"]["roles"].get("general") or {}
        ready = sum(1 for i in found if (i.get("status") or {}).get("ready"))
        return FleetSample(t, int(general.get("replicas", 1)), len(found), ready)

    async def run(self, stop: asyncio.Event, start: float | None = None) -> None:
        """Sample until ``stop``; ``t`` counts from ``start`` (a ``time.monotonic()``)."""
        origin = time.monotonic() if start is None else start
        while not stop.is_set():
            self.samples.append(await self.sample(time.monotonic() - origin))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)
        self.samples.append(await self.sample(time.monotonic() - origin))

    def instance_seconds(self, t0: float = 0.0, t1: float = float("inf")) -> float:
        """Instances integrated over [t0, t1] (each sample holds until the next): the
        replica-seconds (GPU-seconds for one GPU per replica) the fleet cost."""
        total = 0.0
        for a, b in zip(self.samples, self.samples[1:], strict=False):
            lo, hi = max(a.t, t0), min(b.t, t1)
            if hi > lo:
                total += (hi - lo) * a.instances
        return total


REPORT_LOGS: dict[str, Path] = {}
"""Process logs of the stack a module's tests run on; conftest attaches them to failures."""


@contextlib.asynccontextmanager
async def reported_cluster(workdir: Path, **options: Any) -> AsyncIterator[LocalCluster]:
    """``local_cluster`` whose process logs are attached to the reports of failing tests."""
    async with local_cluster(workdir, **options) as cluster:
        REPORT_LOGS.update(cluster.logs)
        yield cluster
    REPORT_LOGS.clear()
