"""Autoscaling end to end: from zero, up under load, down and back to zero, without a failure.

Emulated API + real operator (autoscaler every 0.5 s, reading the real router's demand) + fake
kubelet running simulator processes that take 5 s to listen (``--sim-startup-delay 5``) + real
router. One pool with ``general: {minReplicas: 0, maxReplicas: 3}``, 2 requests per replica,
a 3 s scale-down window and an 8 s idle period before zero:

1. The pool starts at 0 replicas; a request is held by the router (no 503), counted as demand,
   the operator starts a replica and the request succeeds once the engine is Ready.
2. A ramp of long streams (2, then 6 more, ~15 s each) raises replicas, never above 3.
3. The load ends: replicas fall (through the drain) and reach 0 after the idle period.
4. A later request scales the pool from zero again and succeeds.

Every request of the run, long streams included, must succeed; the Events must say why.

A PD pool (prefill and decode 1..3) then takes a prompt-heavy phase (3000-token prompts, one
output token) and a decode-heavy one (one-word prompts, 100 tokens): prefill must scale above
decode in the first, decode above prefill in the second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from e2e import traffic
from e2e.waiting import eventually
from tests.e2e_local.local_cluster import FleetSampler, LocalCluster, reported_cluster

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(400)]

NAME = "auto"
MAX = 3
SIM_ARGS = ["--sim-startup-delay", "5", "--sim-slow-factor", "4"]
OPERATOR = ("--autoscale-interval", "0.5", "--router-url", "{router}")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalCluster]:
    async with reported_cluster(
        tmp_path_factory.mktemp("autoscaling"), operator_args=OPERATOR
    ) as c:
        yield c


def manifest() -> dict[str, Any]:
    return {
        "apiVersion": "sagellm.io/v1alpha1", "kind": "InferencePool", "metadata": {"name": NAME},
        "spec": {
            "model": {"name": NAME, "source": "sim/tiny", "parameters": 1, "maxModelLen": 4096},
            "engine": {"kind": "Simulator", "gpuMemoryGiB": 24, "extraArgs": SIM_ARGS},
            "roles": {"general": {"replicas": 0}},
            "scheduling": {"routing": "load_balanced", "queueTimeoutMs": 60000},
            "autoscaling": {
                "enabled": True, "general": {"minReplicas": 0, "maxReplicas": MAX},
                "targetQueueDepthPerReplica": 2, "scaleDownWindowSeconds": 3,
                "scaleToZeroAfterSeconds": 8,
            },
        },
    }  # fmt: skip


async def replicas(cluster: LocalCluster) -> int:
    pool = await cluster.get("inferencepools", NAME) or {}
    value: int = pool["spec"]["roles"]["general"].get("replicas", 1)
    return value


async def one_request(cluster: LocalCluster, prompt: str) -> traffic.Reply:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as s:
        return await traffic.chat(s, cluster.router_url, NAME, prompt)


async def router_knows_pool(cluster: LocalCluster) -> bool:
    async with aiohttp.ClientSession() as s, s.get(f"{cluster.router_url}/metrics") as r:
        return f'sagellm_router_demand_queued_requests{{pool="default/{NAME}"}}' in await r.text()


async def at_zero(cluster: LocalCluster) -> bool:
    found = await cluster.list("executioninstances", f"sagellm.io/pool={NAME}")
    return await replicas(cluster) == 0 and not found


async def test_ramp_up_hold_fall_to_zero_and_scale_from_zero(cluster: LocalCluster) -> None:
    await cluster.apply(manifest())
    await eventually(lambda: router_knows_pool(cluster), "the router to see the pool", 60,
                             0.2)  # fmt: skip
    watch, stop = FleetSampler(cluster, NAME), asyncio.Event()
    watcher = asyncio.create_task(watch.run(stop))

    started = time.monotonic()
    first = await one_request(cluster, "held at zero")  # 1: held while the pool starts
    from_zero_s = time.monotonic() - started
    assert first.status == 200, first.text
    assert max(s.replicas for s in watch.samples) >= 1

    low = traffic.LongStreams(cluster.router_url, NAME, count=2, max_tokens=400)
    high = traffic.LongStreams(cluster.router_url, NAME, count=6, max_tokens=400)
    ramp = asyncio.create_task(low.run())  # 2: ramp up, hold
    await asyncio.wait_for(low.all_streaming.wait(), 60)
    await high.run()
    await ramp
    traffic.check_streams(low, "scale-out", min_seconds=10)
    traffic.check_streams(high, "scale-out", min_seconds=10)
    peak = max(s.replicas for s in watch.samples)
    assert 2 <= peak <= MAX, watch.samples

    load_ended = time.monotonic()
    await eventually(lambda: at_zero(cluster), "the pool to reach zero", 120, 0.5)  # 3
    to_zero_s = time.monotonic() - load_ended
    started = time.monotonic()
    last = await one_request(cluster, "from zero again")  # 4: scale from zero again
    again_s = time.monotonic() - started
    assert last.status == 200, last.text
    stop.set()
    await watcher
    assert all(0 <= s.replicas <= MAX for s in watch.samples), watch.samples
    assert max(s.instances for s in watch.samples) <= MAX + 1, watch.samples  # surge of one

    events = await cluster.list("events")
    reasons = [e["reason"] for e in events if e["involvedObject"]["name"] == NAME]
    for wanted in ("ScaledFromZero", "ScaledUp", "ScaledDown", "ScaledToZero"):
        assert wanted in reasons, reasons
    pool = await cluster.get("inferencepools", NAME) or {}
    (entry,) = pool["status"]["autoscaling"]["roles"]
    assert entry["role"] == "General"
    assert entry["source"] == "router"
    assert entry["reason"]
    shortest = min(o.seconds for o in [*low.outcomes, *high.outcomes])
    print(f"\nshortest stream {shortest:.1f} s; held request from zero: {from_zero_s:.1f} s, "
          f"again {again_s:.1f} s; load end -> 0 replicas: {to_zero_s:.1f} s; peak {peak}; "
          f"events {reasons}")  # fmt: skip
    span = watch.samples[-1].t - watch.samples[0].t
    print(f"instance-seconds {watch.instance_seconds():.0f} vs {MAX * span:.0f} for a fixed "
          f"fleet of {MAX} over the same {span:.0f} s")  # fmt: skip


PD = "auto-pd"


def pd_manifest() -> dict[str, Any]:
    bounds = {"minReplicas": 1, "maxReplicas": MAX}
    return {
        "apiVersion": "sagellm.io/v1alpha1", "kind": "InferencePool", "metadata": {"name": PD},
        "spec": {
            "model": {"name": PD, "source": "sim/tiny", "parameters": 1, "maxModelLen": 4096},
            "engine": {"kind": "Simulator", "gpuMemoryGiB": 24,
                       "extraArgs": ["--sim-startup-delay", "5", "--sim-slow-factor", "20"]},
            "roles": {"prefill": {"replicas": 1}, "decode": {"replicas": 1},
                      "kvTransfer": {"connector": "NixlConnector"}},
            "scheduling": {"routing": "load_balanced", "pdThresholdInputTokens": 800},
            "autoscaling": {"enabled": True, "prefill": bounds, "decode": bounds,
                            "targetQueueDepthPerReplica": 2, "scaleDownWindowSeconds": 3},
        },
    }  # fmt: skip


async def pd_replicas(cluster: LocalCluster) -> dict[str, int]:
    pool = await cluster.get("inferencepools", PD) or {}
    roles = pool["spec"]["roles"]
    return {r: roles[r].get("replicas", 1) for r in ("prefill", "decode")}


async def clients(cluster: LocalCluster, words: int, max_tokens: int, seconds: float) -> list[int]:
    """Six clients sending completions back to back for ``seconds``; their HTTP statuses. Each
    prompt starts with its own number, so no prefix cache turns a long prompt into a short one
    (the router sends a prompt with few uncached tokens straight to decode)."""
    statuses: list[int] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds

    async def client(session: aiohttp.ClientSession, index: int) -> None:
        n = 0
        while loop.time() < end:
            n += 1
            prompt = f"{index} {n} " + "word " * words
            body = {"model": PD, "prompt": prompt, "max_tokens": max_tokens, "ignore_eos": True}
            async with session.post(f"{cluster.router_url}/v1/completions", json=body) as r:
                await r.read()
                statuses.append(r.status)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        await asyncio.gather(*(client(session, i) for i in range(6)))
    return statuses


async def peak_during(cluster: LocalCluster, work: Any) -> tuple[dict[str, int], Any]:
    """Run ``work`` while sampling the PD pool's replicas; the peak per role and its result."""
    peak = {"prefill": 0, "decode": 0}
    task = asyncio.ensure_future(work)
    while not task.done():
        for role, n in (await pd_replicas(cluster)).items():
            peak[role] = max(peak[role], n)
        await asyncio.wait({task}, timeout=0.3)
    return peak, task.result()


async def pd_ready(cluster: LocalCluster, want: dict[str, int]) -> bool:
    pool = await cluster.get("inferencepools", PD) or {}
    ready = {
        e["role"].lower() for e in (pool.get("status") or {}).get("endpoints", []) if e["ready"]
    }
    return await pd_replicas(cluster) == want and ready == set(want)


async def test_pd_pool_scales_prefill_and_decode_separately(cluster: LocalCluster) -> None:
    await cluster.apply(pd_manifest())
    await eventually(lambda: pd_ready(cluster, {"prefill": 1, "decode": 1}),
                             "the PD pool to be ready at 1 + 1", 90, 0.5)  # fmt: skip
    prompt_heavy, prompt_statuses = await peak_during(cluster, clients(cluster, 3000, 1, 15))
    await eventually(lambda: pd_ready(cluster, {"prefill": 1, "decode": 1}),
                             "the PD pool to settle back at 1 + 1", 120, 0.5)  # fmt: skip
    decode_heavy, decode_statuses = await peak_during(cluster, clients(cluster, 1, 100, 15))
    print(f"\nprompt-heavy peak {prompt_heavy}, decode-heavy peak {decode_heavy}")
    assert set(prompt_statuses) == {200}
    assert set(decode_statuses) == {200}
    assert prompt_heavy["prefill"] >= 2
    assert prompt_heavy["prefill"] > prompt_heavy["decode"], prompt_heavy
    assert decode_heavy["decode"] >= 2
    assert decode_heavy["decode"] > decode_heavy["prefill"], decode_heavy
