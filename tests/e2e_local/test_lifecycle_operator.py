"""Zero-loss lifecycle, operator side, with the whole local stack and streams users meet.

Emulated API + real operator + fake kubelet running simulator processes (real time: a token
takes ~9 ms, so 1,800 tokens last ≥ 15 s) + real router in ``kubernetes`` discovery. Each test
holds 20 concurrent long streams plus a closed loop of short requests across one change:
- scale 4 → 2: the removed instances drain (marked draining, ``D``, then two idle reads of the
  engine's own /metrics) before they are deleted;
- scale 3 → 2 with streams on two engines: the idle third one is the one that goes;
- a rolling update: each new instance is Ready before the old one drains; ready never dips;
- ``kubectl delete pod`` of a busy pod: its endpoint turns draining at once and its preStop
  hook holds SIGTERM until the engine is idle.
Every stream must end with ``[DONE]`` and no error event, no request may fail, and the fake
kubelet's record must show the mechanism at work (no pod deleted or sent SIGTERM while its
engine held requests), so a failover elsewhere could not hide a broken mechanism.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from e2e import scenarios
from e2e.scenarios import INSTANCES, POOL_LABEL, POOLS
from e2e.traffic import LongStreams, Traffic, check_streams
from e2e.waiting import eventually
from sagellm_operator.builders.lifecycle import grace_period
from tests.e2e_local.local_cluster import DISCOVERY_BOUND_S, LocalCluster
from tests.kubeemu import Termination

NAME, MODEL, REPLICAS = "life", "life-model", 4
INSTANCE_LABEL = "sagellm.io/instance"
MAX_TOKENS = 1800
MIN_SECONDS = 15
DRAIN_TIMEOUT_S = 120
pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(300)]
Obj = dict[str, Any]


def manifest(replicas: int, extra_args: tuple[str, ...] = ()) -> Obj:
    return {
        "apiVersion": "sagellm.io/v1alpha1", "kind": "InferencePool",
        "metadata": {"name": NAME},
        "spec": {
            "model": {"name": MODEL, "source": "sim/tiny", "parameters": 1, "maxModelLen": 4096},
            "engine": {"kind": "Simulator", "gpuMemoryGiB": 24,
                       "extraArgs": ["--sim-time-scale", "1.0", *extra_args]},
            "roles": {"general": {"replicas": replicas}},
            "lifecycle": {"drainTimeoutSeconds": DRAIN_TIMEOUT_S},
        },
    }  # fmt: skip


async def pool_at(cluster: LocalCluster, replicas: int) -> None:
    """The pool exists with ``replicas`` serving instances (whatever earlier tests left)."""
    await scenarios.deploy_pool(cluster, manifest(replicas), timeout_s=90)
    await scenarios.serve_openai(cluster, MODEL, timeout_s=30)


async def under_load(
    cluster: LocalCluster, during: str, change: Callable[[], Awaitable[None]],
    settled: Callable[[], Awaitable[object]],
) -> LongStreams:  # fmt: skip
    """Start 20 long streams, make ``change`` once all stream, with short requests flowing
    until the streams are over and ``settled`` returns; every stream and request must
    succeed."""
    streams = LongStreams(cluster.router_url, MODEL, count=20, max_tokens=MAX_TOKENS)
    traffic = Traffic(cluster.router_url, MODEL)
    runner = asyncio.create_task(streams.run())
    loop = asyncio.create_task(traffic.run())
    try:
        await asyncio.wait_for(streams.all_streaming.wait(), 60)
        await change()
        await runner
        await settled()
    finally:
        traffic.stop()
        await loop
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    print(f"\nlifecycle {during}: {streams.summary()}, short requests: {len(traffic.statuses)}")
    check_streams(streams, during, min_seconds=MIN_SECONDS)
    assert not traffic.errors, f"{len(traffic.errors)} short requests failed: {traffic.errors[:3]}"
    return streams


def ended(cluster: LocalCluster, pods: set[str], since: int) -> list[Termination]:
    """The terminations of ``pods`` after the first ``since`` ones (pod names are the
    instances' deterministic names, so an earlier test may have ended a pod of the same name)."""
    assert cluster.kubelet is not None
    return [t for t in cluster.kubelet.terminations[since:] if t.pod in pods]


def terminations(cluster: LocalCluster) -> int:
    assert cluster.kubelet is not None
    return len(cluster.kubelet.terminations)


async def pods_by_instance(cluster: LocalCluster) -> dict[str, str]:
    """Pod name -> instance name of the pool's pods."""
    pods = await cluster.list("pods", f"{POOL_LABEL}={NAME}")
    return {p["metadata"]["name"]: p["metadata"]["labels"][INSTANCE_LABEL] for p in pods}


async def instance_names(cluster: LocalCluster) -> set[str]:
    return {i["metadata"]["name"] for i in await cluster.list(INSTANCES, f"{POOL_LABEL}={NAME}")}


@contextlib.asynccontextmanager
async def lowest_ready(cluster: LocalCluster) -> AsyncIterator[list[int]]:
    """Track the lowest ``status.readyReplicas`` of the pool while the block runs."""
    seen: list[int] = []

    async def watch() -> None:
        while True:
            pool = await cluster.get(POOLS, NAME)
            seen.append(((pool or {}).get("status") or {}).get("readyReplicas", 0))
            await asyncio.sleep(0.1)

    task = asyncio.create_task(watch())
    try:
        yield seen
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_scale_in_drains_before_deleting(cluster: LocalCluster) -> None:
    await pool_at(cluster, REPLICAS)
    before = await pods_by_instance(cluster)
    since = terminations(cluster)

    async def scale_in() -> None:
        await cluster.patch(POOLS, NAME, {"spec": {"roles": {"general": {"replicas": 2}}}})

    removed: set[str] = set()

    async def settled() -> None:
        await scenarios.wait_pool_ready(cluster, NAME, 2, timeout_s=60)
        kept = await instance_names(cluster)
        removed.update(pod for pod, inst in before.items() if inst not in kept)
        await eventually(
            lambda: _all_ended(cluster, removed, since), "the removed pods to end", 60, 0.2
        )

    await under_load(cluster, "scale 4 -> 2", scale_in, settled)
    assert len(removed) == 2, before
    records = ended(cluster, removed, since)
    # The drain deleted each instance only once its engine was idle; the preStop hook
    # (a second line of defence) had nothing left to wait for.
    assert [t.busy_at_delete for t in records] == [0, 0], records


async def test_scale_in_drains_the_least_busy_instance(cluster: LocalCluster) -> None:
    """Of three instances, the lowest and highest index hold long streams; scaling to two
    drains the idle middle one, whose drain has nothing to wait for."""
    await pool_at(cluster, 3)
    since = terminations(cluster)
    found = await cluster.list(INSTANCES, f"{POOL_LABEL}={NAME}")
    low, idle, high = sorted(found, key=lambda i: int(i["spec"]["index"]))
    idle_pods = {
        p for p, i in (await pods_by_instance(cluster)).items() if i == idle["metadata"]["name"]
    }
    streams = [LongStreams(i["status"]["url"], MODEL, count=2, max_tokens=MAX_TOKENS)
               for i in (low, high)]  # fmt: skip
    runners = [asyncio.create_task(s.run()) for s in streams]
    try:
        await asyncio.wait_for(asyncio.gather(*(s.all_streaming.wait() for s in streams)), 60)
        await cluster.patch(POOLS, NAME, {"spec": {"roles": {"general": {"replicas": 2}}}})
        want = {low["metadata"]["name"], high["metadata"]["name"]}

        async def kept() -> bool:
            return await instance_names(cluster) == want

        await eventually(kept, f"only the busy instances {sorted(want)} left", 60, 0.2)
        await eventually(
            lambda: _all_ended(cluster, idle_pods, since), "the idle pod to end", 60, 0.2
        )
        await asyncio.gather(*runners)
    finally:
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)
    for s in streams:
        print(f"\nlifecycle scale 3 -> 2, least busy: {s.summary()}")
        check_streams(s, "scale 3 -> 2", min_seconds=MIN_SECONDS)


async def test_rolling_update_surges_then_drains(cluster: LocalCluster) -> None:
    await pool_at(cluster, 2)
    old_pods = set(await pods_by_instance(cluster))
    since = terminations(cluster)
    old = await instance_names(cluster)

    async def roll() -> None:
        await cluster.apply(manifest(2, ("--sim-seed", "7")))

    async def rolled() -> bool:
        names = await instance_names(cluster)
        return len(names) == 2 and not names & old

    async def settled() -> None:
        await eventually(rolled, "every instance on the new spec", 60, 0.2)
        await eventually(
            lambda: _all_ended(cluster, old_pods, since), "the old pods to end", 60, 0.2
        )

    async with lowest_ready(cluster) as ready:
        await under_load(cluster, "a rolling update", roll, settled)
    assert min(ready) >= 2, f"ready replicas dipped to {min(ready)} during the update"
    records = ended(cluster, old_pods, since)
    assert [t.busy_at_delete for t in records] == [0, 0], records


async def test_deleting_a_busy_pod_lets_its_streams_finish(cluster: LocalCluster) -> None:
    await pool_at(cluster, 2)
    assert cluster.kubelet is not None
    since = terminations(cluster)
    target: dict[str, str] = {}
    shown: list[Obj] = []

    async def delete_busiest() -> None:
        listed = await cluster.list("pods", f"{POOL_LABEL}={NAME}")
        pods = [p for p in listed if p["status"].get("podIP") and not _ending(p)]
        assert cluster.kubelet is not None
        loads = [await cluster.kubelet.engine_load(p["status"]["podIP"]) for p in pods]
        busiest = max(zip(loads, pods, strict=True), key=lambda lp: lp[0] or 0)[1]
        target["pod"] = busiest["metadata"]["name"]
        target["instance"] = busiest["metadata"]["labels"][INSTANCE_LABEL]
        await cluster.delete("pods", target["pod"])
        # The endpoint turns draining while the pod still runs its preStop hook.
        shown.append(await eventually(draining, "the endpoint to turn draining", 30, 0.1))

    async def draining() -> Obj | None:
        pool = await cluster.get(POOLS, NAME)
        endpoints = ((pool or {}).get("status") or {}).get("endpoints") or []
        mine = [e for e in endpoints if e["instance"] == target["instance"]]
        return mine[0] if mine and mine[0]["draining"] and not mine[0]["ready"] else None

    async def settled() -> None:
        await eventually(
            lambda: _all_ended(cluster, {target["pod"]}, since), "the deleted pod to end", 60, 0.2
        )

    await under_load(cluster, "kubectl delete pod", delete_busiest, settled)
    assert shown, "the deleted pod's endpoint never showed as draining"
    (record,) = ended(cluster, {target["pod"]}, since)
    assert record.busy_at_delete, "the deleted pod held no streams: the test proves nothing"
    assert record.busy_at_sigterm == 0, record  # preStop held SIGTERM until it was idle
    assert not record.killed, record
    assert record.grace_s == grace_period(DISCOVERY_BOUND_S, DRAIN_TIMEOUT_S)  # the pool's bound
    await scenarios.wait_pool_ready(cluster, NAME, 2, timeout_s=60)


def _ending(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


async def _all_ended(cluster: LocalCluster, pods: set[str], since: int) -> list[Termination] | None:
    records = ended(cluster, pods, since)
    return sorted(records, key=lambda t: t.pod) if len(records) == len(pods) else None
