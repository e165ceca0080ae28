"""Router resilience end to end: dead, stalled and hung engines, and dead pools.

Emulated API + real operator + fake kubelet running simulator processes + real router in
``kubernetes`` discovery mode, with short fault timers (first byte 5 s, stall 3 s). Twenty
concurrent streams of about 18 s each (``--sim-slow-factor 4``: ~36 ms per token, 500 tokens)
run while one engine is killed with SIGKILL, or stops sending mid-stream (``POST /sim/faults``):
every stream must end with ``[DONE]`` and no error event (mid-stream failover). A stalled
engine must be ejected for ``stall`` and stay out while its ``/health`` answers 200; a pool
whose only engine is dead must answer 503 with Retry-After at once, not after its 30 s queue
timeout. Each test prints the figures docs/fault-tolerance.md reports.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import pytest_asyncio

from e2e import scenarios, traffic
from e2e.waiting import eventually
from tests.e2e_local.local_cluster import LocalCluster, reported_cluster

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(300)]

ROUTER = {
    "timeouts": {"first_byte_s": 5, "stall_s": 3},
    "health": {"probe_interval_s": 0.5, "probe_backoff_max_s": 2, "probe_timeout_s": 2},
    "retries": {"max_failovers": 3},
}
SIM_ARGS = ["--sim-time-scale", "1.0", "--sim-slow-factor", "4", "--sim-admin"]
STREAMS, TOKENS, MIN_SECONDS = 20, 500, 15.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalCluster]:
    async with reported_cluster(tmp_path_factory.mktemp("lifecycle_router"), router=ROUTER) as c:
        yield c


def manifest(name: str, replicas: int, **scheduling: Any) -> dict[str, Any]:
    return {
        "apiVersion": "sagellm.io/v1alpha1", "kind": "InferencePool",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": name, "source": "sim/tiny", "parameters": 1, "maxModelLen": 4096},
            "engine": {"kind": "Simulator", "gpuMemoryGiB": 24, "extraArgs": SIM_ARGS},
            "roles": {"general": {"replicas": replicas}},
            "scheduling": {"routing": "round_robin", **scheduling},
        },
    }  # fmt: skip


async def metrics(cluster: LocalCluster) -> str:
    async with aiohttp.ClientSession() as s, s.get(f"{cluster.router_url}/metrics") as r:
        return await r.text()


def total(text: str, name: str, **labels: str) -> float:
    return scenarios.metric_total(text, name, labels)


async def deploy(cluster: LocalCluster, name: str, replicas: int, **scheduling: Any) -> list[str]:
    """The pool Ready with every endpoint routable in the router; returns the endpoint urls."""
    pool = await scenarios.deploy_pool(cluster, manifest(name, replicas, **scheduling), 120)
    key = f"{cluster.namespace}/{name}"

    async def routable() -> bool:
        gauge = total(await metrics(cluster), "sagellm_router_endpoints", pool=key)
        state = total(await metrics(cluster), "sagellm_router_endpoints", pool=key,
                      state="routable")  # fmt: skip
        return gauge == state == replicas

    await eventually(routable, f"router routing to {replicas} endpoints of {name}", 60, 0.2)
    return [e["url"] for e in pool["status"]["endpoints"]]


def instance_of(pool: dict[str, Any], url: str) -> str:
    return next(e["instance"] for e in pool["status"]["endpoints"] if e["url"] == url)


def kill_engine(cluster: LocalCluster, url: str) -> None:
    """SIGKILL the simulator process serving ``url`` (the pod stays listed as Ready)."""
    assert cluster.kubelet is not None
    host = urlsplit(url).hostname
    key = next(k for k, ip in cluster.kubelet.ips.items() if ip == host)
    cluster.kubelet.processes[key].kill()


async def set_faults(url: str, **faults: Any) -> None:
    async with aiohttp.ClientSession() as s, s.post(f"{url}/sim/faults", json=faults) as r:
        assert r.status == 200, await r.text()


async def streams_across(cluster: LocalCluster, model: str, fault: Any) -> traffic.LongStreams:
    """Run the streams; once every one is streaming, inject ``fault``; wait for all to end."""
    streams = traffic.LongStreams(cluster.router_url, model, count=STREAMS, max_tokens=TOKENS)
    runner = asyncio.create_task(streams.run())
    waiter = asyncio.create_task(streams.all_streaming.wait())
    await asyncio.wait([runner, waiter], timeout=120, return_when=asyncio.FIRST_COMPLETED)
    if not streams.all_streaming.is_set():
        waiter.cancel()
        await runner
        raise scenarios.ScenarioFailed(f"not every stream started: {streams.outcomes[:3]}")
    await fault()
    await runner
    print(f"\n{model}: {streams.summary()}")  # the figures for docs/fault-tolerance.md
    return streams


async def test_kill_9_of_an_engine_mid_stream_cuts_no_stream(cluster: LocalCluster) -> None:
    urls = await deploy(cluster, "lc-kill", 2)

    async def fault() -> None:
        kill_engine(cluster, urls[0])

    streams = await streams_across(cluster, "lc-kill", fault)
    traffic.check_streams(streams, "kill -9 of an engine", MIN_SECONDS)
    text = await metrics(cluster)
    continued = total(text, "sagellm_router_stream_failovers_total", pool="default/lc-kill",
                      outcome="continued")  # fmt: skip
    assert continued >= STREAMS // 4, "the kill should have hit streams in flight"


async def test_engine_that_stalls_mid_stream_cuts_no_stream(cluster: LocalCluster) -> None:
    urls = await deploy(cluster, "lc-stall", 2)

    async def fault() -> None:
        await set_faults(urls[0], stall_after_tokens=0)  # every stream on it stops sending

    streams = await streams_across(cluster, "lc-stall", fault)
    traffic.check_streams(streams, "an engine stalling mid-stream", MIN_SECONDS)
    text = await metrics(cluster)
    assert total(text, "sagellm_router_stream_failovers_total", pool="default/lc-stall",
                 reason="stall", outcome="continued") >= STREAMS // 4  # fmt: skip


async def test_hung_engine_is_ejected_and_not_readmitted_by_health(cluster: LocalCluster) -> None:
    urls = await deploy(cluster, "lc-hung", 2)
    pool = await cluster.get("inferencepools", "lc-hung")
    assert pool is not None
    hung, key = instance_of(pool, urls[0]), "default/lc-hung"
    await set_faults(urls[0], stall_after_tokens=0)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        for i in range(2):  # round robin: one of them lands on the hung engine
            body = {"model": "lc-hung", "max_tokens": 20, "stream": True,
                    "messages": [{"role": "user", "content": f"hello {i}"}]}  # fmt: skip
            async with s.post(f"{cluster.router_url}/v1/chat/completions", json=body) as r:
                assert r.status == 200
                assert (await r.text()).rstrip().endswith("data: [DONE]")
        text = await metrics(cluster)
        assert total(text, "sagellm_router_endpoint_ejections_total", pool=key, endpoint=hung,
                     reason="stall") == 1  # fmt: skip
        for _ in range(10):  # ~5 s: several probes; /health says 200 all along
            async with s.get(f"{urls[0]}/health") as r:
                assert r.status == 200
            text = await metrics(cluster)
            assert total(text, "sagellm_router_endpoints", pool=key, state="ejected") == 1
            await asyncio.sleep(0.5)
    await set_faults(urls[0], stall_after_tokens=None)  # it recovers: a probe re-admits it

    async def readmitted() -> bool:
        text = await metrics(cluster)
        return total(text, "sagellm_router_endpoints", pool=key, state="routable") == 2

    await eventually(readmitted, "the recovered engine to be re-admitted", 30, 0.2)


async def test_dead_pool_answers_503_without_waiting_for_the_queue(cluster: LocalCluster) -> None:
    (url,) = await deploy(cluster, "lc-dead", 1, queueTimeoutMs=30000)
    kill_engine(cluster, url)
    body = {"model": "lc-dead", "prompt": "hello", "max_tokens": 4}
    statuses = []
    # the client gives up long before the 30 s queue timeout: a 503 must come without it
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        for _ in range(6):
            async with s.post(f"{cluster.router_url}/v1/completions", json=body) as r:
                statuses.append(r.status)
                if r.status == 503:
                    assert r.headers["Retry-After"] == "1"
                    assert "none starting" in (await r.json())["error"]["message"]
    assert statuses[-1] == 503, statuses
    assert set(statuses) <= {502, 503}, statuses  # 502: attempts that found it dead
