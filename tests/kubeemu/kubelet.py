"""A fake kubelet: watches pods through the API and reports them running.

Test mode (default): every new pod gets an IP from 10.244.0.0/16 and, per ``behaviour``,
becomes Ready or shows a container problem (CrashLoopBackOff, ImagePullBackOff, OOMKilled).
Simulate mode: each pod runs ``python -m sagellm_sim <container args> --host 127.R.X.Y --port P``
(R random per kubelet, the address checked free); the pod reports that address as its IP and
turns Ready only once the process answers ``/health``. A pod's own network namespace is
emulated by its address: wildcard binds in ``--kv-events-config`` (``tcp://*:5557``) bind the
pod's address, so every pod can publish on the same fixed ports, as on a cluster.

It talks to the emulator over HTTP like a real kubelet, so it works whether the emulator is
in-process or not. Each pod it runs is bound to the node ``kubeemu-node`` (``spec.nodeName``),
so deleting it is graceful, as in a real cluster: the pod gets a deletionTimestamp and stays
while the kubelet ends it. In simulate mode that is what a kubelet does: run the container's
preStop exec hook (on this machine, with the container's env and ``POD_IP`` set, bounded by the
grace period), then SIGTERM, then SIGKILL when the grace period is over (at least 2 s after
SIGTERM); then it deletes the pod with grace 0. In test mode (no process) it deletes the pod at
once. Each ending is recorded in ``terminations`` with the engine's running + waiting requests
when the deletion began and when SIGTERM was sent (what lifecycle tests assert on).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from sagellm_core.engine_metrics import requests_in_engine
from tests.kubeemu.pods import PodBehaviour, Termination, address_free, pod_status, simulator_argv
from tests.ports import loopback_net

Obj = dict[str, Any]
MERGE = {"Content-Type": "application/merge-patch+json"}
NODE = "kubeemu-node"


@dataclass
class FakeKubelet:
    api_url: str
    namespace: str | None = None
    simulate: bool = False
    sim_port: int = 8000
    behaviour: Callable[[Obj], PodBehaviour] = lambda pod: PodBehaviour()
    ready_timeout: float = 60.0
    ips: dict[tuple[str, str], str] = field(default_factory=dict)
    processes: dict[tuple[str, str], asyncio.subprocess.Process] = field(default_factory=dict)
    terminations: list[Termination] = field(default_factory=list)
    hold_deletions: bool = False
    """Leave deleted pods terminating (as a slow preStop hook would) until
    ``finish_deletions``."""
    _held: list[Obj] = field(default_factory=list)
    _ending: set[tuple[str, str]] = field(default_factory=set)
    # The uid of the pod each name was started for: a pod recreated under the same name (a
    # deleted instance's replacement) is a new pod even if the old one's DELETED was missed.
    _started: dict[tuple[str, str], str] = field(default_factory=dict)
    _next_ip: int = 2
    _net: int = field(default=0, init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _session: aiohttp.ClientSession | None = None

    def _pods_url(self, ns: str | None = None) -> str:
        ns = ns or self.namespace
        return f"/api/v1/namespaces/{ns}/pods" if ns else "/api/v1/pods"

    async def __aenter__(self) -> FakeKubelet:
        self._session = aiohttp.ClientSession(base_url=self.api_url)
        self._spawn(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for key in list(self.processes):
            await self._stop_process(key)
        if self._session is not None:
            await self._session.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _allocate_ip(self) -> str:
        while True:
            n, self._next_ip = self._next_ip, self._next_ip + 1
            if not self.simulate:
                return f"10.244.{n // 250}.{n % 250 + 2}"
            ip = f"127.{self._net}.{n // 250}.{n % 250 + 2}"
            if address_free(ip, self.sim_port):
                return ip

    def __post_init__(self) -> None:
        # Each kubelet takes its own 127.R.0.0/16, so simulators of test runs that share the
        # machine never answer on each other's addresses.
        self._net = loopback_net()

    async def _run(self) -> None:
        while True:  # list, then watch; relist after any stream error (as informers do)
            # aiohttp's default 5-minute total timeout ends long watches: relist then too.
            with contextlib.suppress(aiohttp.ClientError, KeyError, TimeoutError):
                await self._list_and_watch()
            await asyncio.sleep(0.1)

    async def _list_and_watch(self) -> None:
        assert self._session is not None
        listing = await (await self._session.get(self._pods_url())).json()
        for pod in listing["items"]:
            await self._on_event("ADDED", pod)
        rv = listing["metadata"]["resourceVersion"]
        while True:
            async for event in self._watch(rv):
                if event["type"] == "ERROR":
                    return
                rv = event["object"]["metadata"].get("resourceVersion", rv)
                await self._on_event(event["type"], event["object"])

    async def _watch(self, rv: str) -> AsyncIterator[Obj]:
        assert self._session is not None
        params = {"watch": "true", "resourceVersion": rv}
        async with self._session.get(self._pods_url(), params=params) as resp:
            async for line in resp.content:
                if line.strip():
                    yield json.loads(line)

    async def _on_event(self, kind: str, pod: Obj) -> None:
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        uid = meta.get("uid", "")
        if kind == "DELETED":
            if self._started.get(key, uid) == uid:  # not a newer pod of the same name
                self.ips.pop(key, None)
                self._started.pop(key, None)
                self._ending.discard(key)
                self._spawn(self._stop_process(key))
        elif meta.get("deletionTimestamp"):
            if key not in self._ending:
                self._ending.add(key)
                self._spawn(self._terminate(pod))
        elif (
            self._started.get(key) != uid
            and pod.get("status", {}).get("phase", "Pending") == "Pending"
        ):
            self._ending.discard(key)
            self._started[key] = uid
            self.ips[key] = self._allocate_ip()
            self._spawn(self._start(pod, self.ips[key]))

    async def _bind(self, pod: Obj) -> None:
        assert self._session is not None
        meta = pod["metadata"]
        url = f"{self._pods_url(meta['namespace'])}/{meta['name']}"
        body = json.dumps({"spec": {"nodeName": NODE}})
        async with self._session.patch(url, data=body, headers=MERGE) as resp:
            if resp.status not in (200, 404):
                raise RuntimeError(f"kubelet bind failed: {resp.status} {await resp.text()}")

    async def _start(self, pod: Obj, ip: str) -> None:
        await self._bind(pod)
        if not self.simulate:
            await self.report(pod, self.behaviour(pod))
            return
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        argv = simulator_argv(pod, ip, self.sim_port)
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, **self._env(pod)},
        )  # fmt: skip
        self.processes[key] = proc
        if await self._healthy(ip, proc):
            await self.report(pod, PodBehaviour())
        else:
            msg = f"simulator exited with {proc.returncode}" if proc.returncode else "not healthy"
            await self.report(
                pod, PodBehaviour(ready=False, waiting_reason="CrashLoopBackOff", message=msg)
            )

    @staticmethod
    def _env(pod: Obj) -> dict[str, str]:
        container = pod["spec"]["containers"][0]
        return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}

    async def _healthy(self, ip: str, proc: asyncio.subprocess.Process) -> bool:
        deadline = asyncio.get_running_loop().time() + self.ready_timeout
        async with aiohttp.ClientSession() as session:
            while asyncio.get_running_loop().time() < deadline and proc.returncode is None:
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(f"http://{ip}:{self.sim_port}/health") as resp:
                        if resp.status == 200:
                            return True
                await asyncio.sleep(0.2)
        return False

    async def _stop_process(self, key: tuple[str, str]) -> None:
        proc = self.processes.pop(key, None)
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()

    async def finish_deletions(self) -> None:
        """End the pods held by ``hold_deletions``."""
        held, self._held = self._held, []
        for pod in held:
            await self._terminate(pod)

    async def _terminate(self, pod: Obj) -> None:
        """End a pod being deleted as a kubelet does: preStop hook, SIGTERM, SIGKILL."""
        assert self._session is not None
        if self.hold_deletions:
            self._held.append(pod)
            return
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        record = Termination(meta["name"], float(meta.get("deletionGracePeriodSeconds") or 0))
        proc, ip = self.processes.get(key), self.ips.get(key)
        if proc is not None and proc.returncode is None and ip is not None:
            await self._end_process(pod, proc, ip, record)
        self.processes.pop(key, None)
        self.terminations.append(record)
        url = f"{self._pods_url(meta['namespace'])}/{meta['name']}"
        async with self._session.delete(url, params={"gracePeriodSeconds": "0"}) as resp:
            if resp.status not in (200, 404):
                raise RuntimeError(f"kubelet delete failed: {resp.status} {await resp.text()}")

    async def _end_process(
        self, pod: Obj, proc: asyncio.subprocess.Process, ip: str, record: Termination
    ) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        record.busy_at_delete = await self.engine_load(ip)
        container = pod["spec"]["containers"][0]
        hook = ((container.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}
        if hook.get("command"):
            await self._run_hook(hook["command"], container, ip, record.grace_s)
        record.prestop_s = loop.time() - start
        record.busy_at_sigterm = await self.engine_load(ip)
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), max(record.grace_s - record.prestop_s, 2.0))
        except TimeoutError:
            proc.kill()
            await proc.wait()
            record.killed = True

    async def _run_hook(self, argv: list[str], container: Obj, ip: str, limit: float) -> None:
        env = {**os.environ, **self._container_env(container, ip)}
        hook = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env
        )
        try:
            await asyncio.wait_for(hook.wait(), limit)
        except TimeoutError:
            hook.kill()
            await hook.wait()

    @staticmethod
    def _container_env(container: Obj, ip: str) -> dict[str, str]:
        env: dict[str, str] = {}
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = var["value"]
            elif (var.get("valueFrom") or {}).get("fieldRef", {}).get(
                "fieldPath"
            ) == "status.podIP":
                env[var["name"]] = ip
        return env

    async def engine_load(self, ip: str) -> float | None:
        """The engine's running + waiting requests from its /metrics (None: unreadable)."""
        url = f"http://{ip}:{self.sim_port}/metrics"
        try:
            async with aiohttp.ClientSession() as session, session.get(url) as resp:
                return requests_in_engine(await resp.text())
        except (aiohttp.ClientError, OSError):
            return None

    async def report(self, pod: Obj, behaviour: PodBehaviour) -> None:
        """Patch the pod's status as a kubelet would (also usable from tests at any time)."""
        assert self._session is not None
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        ip = self.ips.get(key) or self._allocate_ip()
        self.ips[key] = ip
        url = f"{self._pods_url(meta['namespace'])}/{meta['name']}/status"
        body = {"status": pod_status(pod, ip, behaviour)}
        async with self._session.patch(url, data=json.dumps(body), headers=MERGE) as resp:
            if resp.status not in (200, 404):
                raise RuntimeError(
                    f"kubelet status patch failed: {resp.status} {await resp.text()}"
                )
