"""End-to-end scenarios, written once for every cluster backend.

A backend is anything with the ``Cluster`` shape: the router's base URL and a few kubectl-like
calls on the namespaced objects of one namespace. ``e2e/`` runs these against kind (kubectl and
a port-forward); ``tests/e2e_local`` runs them against the emulated API server with the operator,
router and simulators as local processes. Scenarios wait on conditions (never fixed sleeps) and
fail with the last state they saw.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

import aiohttp

from e2e.traffic import (
    ScenarioFailed,
    Traffic,
    chat,
    listed_models,
)
from e2e.waiting import eventually

POOL_LABEL = "sagellm.io/pool"
HASH_LABEL = "sagellm.io/spec-hash"
POOLS, INSTANCES, PODS = "inferencepools", "executioninstances", "pods"
Obj = dict[str, Any]


class Cluster(Protocol):
    """What a scenario needs from a cluster; all calls act in ``namespace``.

    A backend may also set ``poll_interval_s`` (default 1 s): how often scenarios re-check a
    condition (a local backend polls faster than kubectl can).
    """

    namespace: str
    router_url: str

    async def apply(self, manifest: Obj) -> None: ...
    async def get(self, plural: str, name: str) -> Obj | None: ...
    async def list(self, plural: str, selector: str = "") -> list[Obj]: ...
    async def patch(self, plural: str, name: str, patch: Obj) -> None: ...
    async def delete(self, plural: str, name: str) -> None: ...


#: A router restarting or a port-forward blip: not yet, rather than a failure.
_TRANSIENT = (aiohttp.ClientError, OSError)


def _poll(cluster: Cluster) -> float:
    interval: float = getattr(cluster, "poll_interval_s", 1.0)
    return interval


# --- pool state -------------------------------------------------------------------------------


def serving_endpoints(pool: Obj) -> list[Obj]:
    """Endpoints the router may use: ready and not draining."""
    endpoints = (pool.get("status") or {}).get("endpoints") or []
    return [e for e in endpoints if e.get("ready") and not e.get("draining")]


def pool_problem(pool: Obj | None, replicas: int) -> str | None:
    """Why ``pool`` is not Ready with exactly ``replicas`` serving endpoints (None when it is)."""
    if pool is None:
        return "pool does not exist"
    status = pool.get("status") or {}
    generation = pool["metadata"].get("generation")
    if generation is not None and status.get("observedGeneration") != generation:
        return f"status is for generation {status.get('observedGeneration')}, spec is {generation}"
    if status.get("phase") != "Ready":
        return f"phase is {status.get('phase')!r}"
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    if not ready or ready[0].get("status") != "True":
        return f"Ready condition is {ready[0] if ready else None}"
    serving, listed = serving_endpoints(pool), status.get("endpoints") or []
    if len(serving) != replicas or len(listed) != replicas:
        return f"{len(serving)} serving of {len(listed)} endpoints, want {replicas}"
    return None


async def wait_pool_ready(cluster: Cluster, name: str, replicas: int, timeout_s: float) -> Obj:
    seen: dict[str, str | None] = {"problem": None}

    async def probe() -> Obj | None:
        pool = await cluster.get(POOLS, name)
        seen["problem"] = pool_problem(pool, replicas)
        return pool if seen["problem"] is None else None

    try:
        what = f"pool {name} Ready with {replicas} endpoints"
        return await eventually(probe, what, timeout_s, _poll(cluster), tolerate=_TRANSIENT)
    except AssertionError as exc:
        raise ScenarioFailed(f"{exc}; pool: {seen['problem']}") from None


# --- OpenAI traffic ---------------------------------------------------------------------------


async def deploy_pool(cluster: Cluster, manifest: Obj, timeout_s: float = 300) -> Obj:
    """Apply a pool and wait until it is Ready with every replica serving."""
    manifest = {**manifest, "metadata": {**manifest["metadata"], "namespace": cluster.namespace}}
    await cluster.apply(manifest)
    replicas = manifest["spec"]["roles"]["general"]["replicas"]
    return await wait_pool_ready(cluster, manifest["metadata"]["name"], replicas, timeout_s)


async def serve_openai(cluster: Cluster, model: str, timeout_s: float = 120) -> None:
    """The router lists the model and answers plain and streamed chat completions."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def model_listed() -> bool:
            return model in await listed_models(session, cluster.router_url)

        await eventually(
            model_listed,
            f"router to list model {model}",
            timeout_s,
            _poll(cluster),
            tolerate=_TRANSIENT,
        )
        plain = await chat(session, cluster.router_url, model, "Say hello")
        if plain.status != 200 or not plain.text:
            raise ScenarioFailed(f"chat completion: {plain}")
        streamed = await chat(session, cluster.router_url, model, "Say hello", stream=True)
        if streamed.status != 200 or streamed.chunks < 2:
            raise ScenarioFailed(f"streamed chat completion: {streamed}")
        unknown = await chat(session, cluster.router_url, f"{model}-does-not-exist", "hi")
        if unknown.status != 404:
            raise ScenarioFailed(f"unknown model should be 404, got {unknown.status}")


def metric_total(text: str, name: str, labels: dict[str, str]) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (Prometheus text format)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        series, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(value)
    return total


async def check_metrics_and_status(cluster: Cluster, pool_name: str, model: str) -> None:
    """Router metrics count the traffic; pool status, instances and pods agree."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{cluster.router_url}/metrics") as resp,
    ):
        text = await resp.text()
    served = metric_total(text, "sagellm_router_requests_total", {"model": model, "status": "200"})
    if served < 2:
        raise ScenarioFailed(f"sagellm_router_requests_total for {model} is {served}, want >= 2")
    pool = await cluster.get(POOLS, pool_name)
    assert pool is not None
    urls = [e["url"] for e in pool["status"]["endpoints"]]
    if len(set(urls)) != len(urls):
        raise ScenarioFailed(f"duplicate endpoint urls in status: {urls}")
    selector = f"{POOL_LABEL}={pool_name}"
    instances = await cluster.list(INSTANCES, selector)
    if {i["metadata"]["name"] for i in instances} != {
        e["instance"] for e in pool["status"]["endpoints"]
    }:
        raise ScenarioFailed("status.endpoints and ExecutionInstances name different instances")
    pods = [p for p in await cluster.list(PODS, selector) if p["status"].get("phase") == "Running"]
    if len(pods) < len(instances):
        raise ScenarioFailed(f"{len(pods)} running pods for {len(instances)} instances")


async def scale(
    cluster: Cluster, pool_name: str, model: str, replicas: int, timeout_s: float = 300
) -> None:
    """Change the replica count, wait for convergence, and check traffic still flows."""
    await _scale_to(cluster, pool_name, replicas, timeout_s)
    await serve_openai(cluster, model)


async def scale_under_traffic(
    cluster: Cluster, pool_name: str, model: str, steps: list[int], timeout_s: float = 300
) -> Traffic:
    """Scale through ``steps`` (e.g. 3 then 2) while clients keep sending; none may fail.

    Scaling in must drain: the router stops sending to a draining endpoint before its pod goes.
    """
    async with _traffic_flowing(cluster, model) as traffic:
        for replicas in steps:
            await _scale_to(cluster, pool_name, replicas, timeout_s)
    _no_failures(traffic, f"scaling {pool_name} through {steps}")
    return traffic


@contextlib.asynccontextmanager
async def _traffic_flowing(cluster: Cluster, model: str) -> AsyncIterator[Traffic]:
    """Clients sending to ``model`` (their first replies seen) until the block ends."""
    traffic = Traffic(cluster.router_url, model)
    runner = asyncio.create_task(traffic.run())
    try:
        first = lambda: _some(traffic.statuses)  # noqa: E731
        await eventually(first, "the first traffic replies", 60, 0.2, tolerate=_TRANSIENT)
        yield traffic
    finally:
        traffic.stop()
        await runner


async def _scale_to(cluster: Cluster, pool_name: str, replicas: int, timeout_s: float) -> None:
    await cluster.patch(POOLS, pool_name, {"spec": {"roles": {"general": {"replicas": replicas}}}})
    await wait_pool_ready(cluster, pool_name, replicas, timeout_s)

    async def converged() -> bool:
        return len(await cluster.list(INSTANCES, f"{POOL_LABEL}={pool_name}")) == replicas

    what = f"{replicas} ExecutionInstances of {pool_name}"
    await eventually(converged, what, timeout_s, _poll(cluster), tolerate=_TRANSIENT)


async def rolling_update_under_traffic(
    cluster: Cluster, pool_name: str, model: str, spec_patch: Obj, timeout_s: float = 600
) -> Traffic:
    """Roll every instance to a new spec while clients keep sending; no request may fail."""
    selector = f"{POOL_LABEL}={pool_name}"
    old = {i["metadata"]["labels"].get(HASH_LABEL) for i in await cluster.list(INSTANCES, selector)}
    pool = await cluster.get(POOLS, pool_name)
    assert pool is not None
    replicas = pool["spec"]["roles"]["general"]["replicas"]
    async with _traffic_flowing(cluster, model) as traffic:
        await cluster.patch(POOLS, pool_name, {"spec": spec_patch})

        async def rolled() -> bool:
            instances = await cluster.list(INSTANCES, selector)
            hashes = {i["metadata"]["labels"].get(HASH_LABEL) for i in instances}
            return len(instances) == replicas and not hashes & old

        what = f"every instance of {pool_name} on the new spec"
        await eventually(rolled, what, timeout_s, _poll(cluster), tolerate=_TRANSIENT)
        await wait_pool_ready(cluster, pool_name, replicas, timeout_s)
    _no_failures(traffic, "the rollout")
    return traffic


def _no_failures(traffic: Traffic, during: str) -> None:
    if traffic.errors:
        raise ScenarioFailed(
            f"{len(traffic.errors)} of {len(traffic.statuses)} requests failed during "
            f"{during}; first: {traffic.errors[:3]}"
        )


async def _some(values: list[int]) -> bool:
    return bool(values)


async def delete_pool(cluster: Cluster, pool_name: str, model: str, timeout_s: float = 300) -> None:
    """Delete the pool: instances and pods go, and the router stops listing the model."""
    await cluster.delete(POOLS, pool_name)
    selector = f"{POOL_LABEL}={pool_name}"

    async def gone() -> bool:
        left = await cluster.list(INSTANCES, selector) + await cluster.list(PODS, selector)
        return await cluster.get(POOLS, pool_name) is None and not left

    what = f"pool {pool_name}, its instances and pods to be deleted"
    await eventually(gone, what, timeout_s, _poll(cluster), tolerate=_TRANSIENT)
    async with aiohttp.ClientSession() as session:

        async def unlisted() -> bool:
            return model not in await listed_models(session, cluster.router_url)

        await eventually(
            unlisted, f"router to stop listing {model}", 60, _poll(cluster), tolerate=_TRANSIENT
        )
