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
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

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


class ScenarioFailed(AssertionError):
    """A scenario's expectation did not hold; the message says what and what was seen."""


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


@dataclass
class Reply:
    status: int
    text: str
    chunks: int = 0


async def sse_data(resp: aiohttp.ClientResponse) -> AsyncIterator[str]:
    """The payload of each ``data:`` line of a server-sent event stream."""
    async for raw in resp.content:
        line = raw.decode().strip()
        if line.startswith("data:"):
            yield line[5:].strip()


async def chat(
    session: aiohttp.ClientSession, base: str, model: str, prompt: str, stream: bool = False
) -> Reply:
    """One chat completion through the router; streaming replies are joined from SSE deltas."""
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 16}
    if stream:
        body["stream"] = True
    async with session.post(f"{base}/v1/chat/completions", json=body) as resp:
        if resp.status != 200 or not stream:
            payload = await resp.text()
            if resp.status != 200:
                return Reply(resp.status, payload)
            return Reply(200, json.loads(payload)["choices"][0]["message"]["content"])
        parts, chunks, done = [], 0, False
        async for data in sse_data(resp):
            if data == "[DONE]":
                done = True
                break
            chunks += 1
            for choice in json.loads(data).get("choices") or []:
                parts.append((choice.get("delta") or {}).get("content") or "")
        if not done:
            return Reply(599, "stream ended without data: [DONE]", chunks)
        return Reply(200, "".join(parts), chunks)


async def listed_models(session: aiohttp.ClientSession, base: str) -> set[str]:
    async with session.get(f"{base}/v1/models") as resp:
        resp.raise_for_status()
        return {m["id"] for m in (await resp.json())["data"]}


@dataclass
class Traffic:
    """Closed-loop load: ``workers`` clients each sending one request after another."""

    base: str
    model: str
    workers: int = 4
    statuses: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _worker(self, session: aiohttp.ClientSession, index: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                reply = await chat(
                    session, self.base, self.model, f"worker {index} req {n}", n % 2 == 0
                )
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                reply = Reply(598, f"{type(exc).__name__}: {exc}")
            self.statuses.append(reply.status)
            if reply.status != 200:
                self.errors.append(f"{reply.status}: {reply.text[:200]}")

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(*(self._worker(session, i) for i in range(self.workers)))

    def stop(self) -> None:
        self._stop.set()


@dataclass
class StreamOutcome:
    """How one long stream ended: HTTP status (598: connection error), whether ``[DONE]`` came,
    the first error (an SSE error event or an exception), chunks received and seconds taken."""

    status: int
    done: bool = False
    error: str = ""
    chunks: int = 0
    seconds: float = 0.0

    @property
    def finished(self) -> bool:
        return self.status == 200 and self.done and not self.error

    @property
    def cut(self) -> bool:
        """Started streaming, then ended without a clean ``[DONE]``."""
        return self.status == 200 and not self.finished


@dataclass
class LongStreams:
    """``count`` concurrent streaming chat requests, each long enough (``max_tokens``) to last
    tens of seconds: the load a lifecycle change must not hurt. ``all_streaming`` is set once
    every stream has received its first chunk, so a test can act while all are mid-stream."""

    base: str
    model: str
    count: int = 20
    max_tokens: int = 400
    outcomes: list[StreamOutcome] = field(default_factory=list)
    all_streaming: asyncio.Event = field(default_factory=asyncio.Event)
    _first_chunks: int = 0

    async def _one(self, session: aiohttp.ClientSession, index: int) -> StreamOutcome:
        body = {"model": self.model, "max_tokens": self.max_tokens, "stream": True,
                "stream_options": {"include_usage": True}, "ignore_eos": True,
                "messages": [{"role": "user", "content": f"long stream {index}"}]}  # fmt: skip
        start = time.monotonic()
        out = StreamOutcome(status=0)
        try:
            async with session.post(f"{self.base}/v1/chat/completions", json=body) as resp:
                out.status = resp.status
                if resp.status != 200:
                    out.error = (await resp.text())[:200]
                else:
                    await self._read(resp, out)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            out.status = out.status or 598
            out.error = out.error or f"{type(exc).__name__}: {exc}"
        out.seconds = time.monotonic() - start
        return out

    async def _read(self, resp: aiohttp.ClientResponse, out: StreamOutcome) -> None:
        async for data in sse_data(resp):
            if data == "[DONE]":
                out.done = True
                return
            if out.chunks == 0:
                self._first_chunks += 1
                if self._first_chunks == self.count:
                    self.all_streaming.set()
            out.chunks += 1
            event = json.loads(data)
            if "error" in event and not out.error:
                out.error = json.dumps(event["error"])[:200]

    async def run(self) -> list[StreamOutcome]:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            self.outcomes = list(
                await asyncio.gather(*(self._one(session, i) for i in range(self.count)))
            )
        return self.outcomes

    def summary(self) -> dict[str, int]:
        """The figures docs/fault-tolerance.md reports: started, finished, cut, failed."""
        started = sum(1 for o in self.outcomes if o.status == 200)
        finished = sum(1 for o in self.outcomes if o.finished)
        cut = sum(1 for o in self.outcomes if o.cut)
        return {"started": started, "finished": finished, "cut": cut,
                "failed": len(self.outcomes) - started}  # fmt: skip


def check_streams(streams: LongStreams, during: str, min_seconds: float = 0.0) -> None:
    """Every stream ended with ``[DONE]`` and no error event, and lasted at least
    ``min_seconds`` (so the test really held long streams across the change)."""
    bad = [o for o in streams.outcomes if not o.finished]
    if bad:
        raise ScenarioFailed(
            f"{len(bad)} of {len(streams.outcomes)} streams were hurt during {during} "
            f"({streams.summary()}); first: {bad[:3]}"
        )
    short = [o.seconds for o in streams.outcomes if o.seconds < min_seconds]
    if short:
        raise ScenarioFailed(
            f"{len(short)} streams lasted under {min_seconds:.0f}s ({min(short):.1f}s): the "
            f"test did not hold long streams across {during}; raise max_tokens"
        )


# --- scenarios --------------------------------------------------------------------------------


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
