"""``ControlPlaneManager``: the router core embedded in a Python program.

It runs the same pipeline as the HTTP router (``pipeline.handle``: admission queue and
scheduling policy, routing strategy, PD orchestration, proxy with retries), fed from
registered instances instead of discovery and writing answers into memory instead of an HTTP
response. Requests are OpenAI completions sent to the instances' HTTP API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

import orjson

from sagellm_router.config import PdSettings, RouterSettings, ScrapeSettings
from sagellm_router.downstream import Collector, Downstream
from sagellm_router.errors import ApiError
from sagellm_router.inprocess.adapter import LocalEngine
from sagellm_router.manager.convert import headers_of, pools_of
from sagellm_router.manager.local import make_local, shutdown
from sagellm_router.manager.records import Record, percentile, summarize
from sagellm_router.manager.types import (
    ExecutionInstance,
    InstanceMetrics,
    PDSeparationConfig,
    PerformanceMetrics,
    RequestMetadata,
    RequestStatus,
)
from sagellm_router.pipeline import Job, handle
from sagellm_router.proxy import Exchange
from sagellm_router.services import CoreServices
from sagellm_router.state import RouterState, build_state
from sagellm_router.stats.tracker import Clock
from sagellm_router.types import PoolSnapshot
from sagellm_router.validation import COMPLETIONS, parse_body

log = logging.getLogger(__name__)


class RequestFailed(RuntimeError):
    """``process_request`` did not complete: the message says why (status and reason)."""


class _NoDiscovery:
    """Pools come from ``register_instance``; this source never publishes."""

    async def updates(self) -> AsyncIterator[tuple[PoolSnapshot, ...]]:
        await asyncio.Event().wait()
        yield ()


class ControlPlaneManager:
    def __init__(
        self,
        scheduling_policy: str = "adaptive",
        routing_strategy: str = "load_balanced",
        enable_pd_separation: bool = True,
        pd_config: PDSeparationConfig | None = None,
        *,
        settings: RouterSettings | None = None,
        default_max_tokens: int = 256,
        clock: Clock = time.monotonic,
        **_ignored: Any,
    ) -> None:
        self.pd_config = pd_config or PDSeparationConfig(enabled=enable_pd_separation)
        pd = PdSettings(
            enabled=enable_pd_separation and self.pd_config.enabled,
            prefill_routing=self.pd_config.prefill_routing,
            decode_routing=self.pd_config.decode_routing,
        )
        base = settings or RouterSettings(scrape=ScrapeSettings(interval_s=0.5))
        routing = base.routing.model_copy(update={"default": routing_strategy})
        self.settings = base.model_copy(update={"pd": pd, "routing": routing})
        self.state: RouterState = build_state(self.settings, clock)
        self._clock = clock
        self._policy = self._known_policy(scheduling_policy)
        self._routing = routing_strategy
        self._default_max_tokens = default_max_tokens
        self._instances: dict[str, ExecutionInstance] = {}
        self._records: dict[str, Record] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._services: CoreServices | None = None
        self._started_s: float | None = None
        self._local: dict[str, LocalEngine] = {}
        self._owned: set[str] = set()

    # -- configuration -----------------------------------------------------------------------
    def _known_policy(self, name: str) -> str:
        known = self.state.policy_names
        if name not in known:
            raise ValueError(f"unknown scheduling policy {name!r}; known: {', '.join(known)}")
        return name

    @property
    def routing_strategy(self) -> str:
        return self._routing

    @routing_strategy.setter
    def routing_strategy(self, name: str) -> None:
        if not self.state.strategies.knows(name):
            known = ", ".join(self.state.strategies.names)
            raise ValueError(f"unknown routing strategy {name!r}; known: {known}")
        self._routing = name
        self._publish()

    def update_policy(self, name: str) -> None:
        """Switch the scheduling policy of every pool now (queued requests are re-ranked)."""
        self._policy = self._known_policy(name)
        if self.state.runtimes:
            self.state.set_policy(None, name)
        self._publish()

    def register_instance(self, instance: ExecutionInstance) -> None:
        self._instances[instance.instance_id] = instance
        if self._services is not None and instance.executor == "inprocess":
            self._start_local(instance)
        self._publish()

    def unregister_instance(self, instance_id: str) -> bool:
        instance = self._instances.pop(instance_id, None)
        self._publish()
        if instance is not None and instance.url in self._local:
            local = self._local.pop(instance.url)
            if instance.url in self._owned:
                self._owned.discard(instance.url)
                task = asyncio.ensure_future(shutdown(local))
                self._tasks[f"shutdown {instance_id}"] = task
        return instance is not None

    def _start_local(self, instance: ExecutionInstance) -> None:
        if instance.url in self._local:
            return
        local, owned = make_local(instance)
        self._local[instance.url] = local
        if owned:
            self._owned.add(instance.url)

    def _publish(self) -> None:
        pools = pools_of(self._instances.values(), self._policy, self._routing, self.pd_config)
        self.state.apply_pools(pools)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        if self._services is not None:
            return
        for instance in self._instances.values():
            if instance.executor == "inprocess":
                self._start_local(instance)
        self._services = CoreServices(self.state, _NoDiscovery(), self._local)
        await self._services.start()
        self._started_s = self._clock()
        log.info("control plane started", extra={"instances": len(self._instances)})

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._services is not None:
            await self._services.stop()
            self._services = None
        for url in sorted(self._owned):
            await shutdown(self._local.pop(url))
        self._owned.clear()
        self._local.clear()

    # -- requests ----------------------------------------------------------------------------
    async def submit_request(self, request: RequestMetadata) -> str:
        """Queue ``request``; returns its id at once (poll ``get_request_status``)."""
        if self._services is None:
            raise RuntimeError("call await manager.start() before submitting requests")
        if request.request_id in self._records:
            raise ValueError(f"request id {request.request_id!r} was already submitted")
        body = self._body(request)
        raw = orjson.dumps(body)
        job = Job(parse_body(raw, COMPLETIONS), raw, headers_of(request))
        record = Record(request.request_id, self._clock(), request.slo_deadline_ms)
        self._records[request.request_id] = record
        task = asyncio.create_task(self._run(record, job), name=f"request {request.request_id}")
        self._tasks[request.request_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(request.request_id, None))
        return request.request_id

    async def execute(
        self,
        path: str,
        body: Mapping[str, Any],
        down: Downstream,
        headers: Mapping[str, str] | None = None,
    ) -> Exchange:
        """Serve one OpenAI request (``/v1/completions``, ``/v1/chat/completions``,
        ``/v1/embeddings``; streaming too) through the pipeline into ``down``.

        Raises ``ApiError`` (status, message, Retry-After) for answers the router would render
        as an error body; upstream errors arrive in ``down`` like any answer.
        """
        if self._services is None:
            raise RuntimeError("call await manager.start() before sending requests")
        raw = orjson.dumps(body)
        parsed = parse_body(raw, path, self.settings.limits.max_embedding_inputs)
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        parsed.session_key = lowered.get("x-session-id") or parsed.session_key
        return await handle(self.state, self._upstream(), Job(parsed, raw, lowered), down)

    def _body(self, request: RequestMetadata) -> dict[str, Any]:
        models = sorted({i.model_name for i in self._instances.values()})
        model = request.model_name or (models[0] if len(models) == 1 else None)
        if model is None:
            raise ValueError(f"set RequestMetadata.model_name; registered models: {models}")
        body: dict[str, Any] = {
            "model": model,
            "prompt": request.prompt or "",
            "max_tokens": request.max_tokens or self._default_max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
        }
        if request.user_id:
            body["user"] = request.user_id
        return body

    async def _run(self, record: Record, job: Job) -> None:
        def admitted(ex: object) -> None:
            record.status = RequestStatus.RUNNING

        out = Collector()
        try:
            hooked = replace(job, on_admitted=admitted)
            ex = await handle(self.state, self._upstream(), hooked, out)
            record.instance, record.prefill_instance = ex.instance, ex.prefill_instance
            record.http_status = out.status
            self._finish(record, out)
        except ApiError as err:
            record.http_status, record.error = err.status, err.message
            record.status = RequestStatus.FAILED
        except asyncio.CancelledError:
            record.status = RequestStatus.CANCELLED
            raise
        finally:
            record.finished_s = self._clock()

    def _upstream(self) -> Any:
        assert self._services is not None
        return self._services.upstream

    @staticmethod
    def _finish(record: Record, out: Collector) -> None:
        try:
            payload = orjson.loads(bytes(out.body))
        except orjson.JSONDecodeError:
            payload = {"raw": bytes(out.body).decode("utf-8", "replace")}
        record.output = payload if isinstance(payload, dict) else {"raw": payload}
        if out.status == 200:
            record.status = RequestStatus.COMPLETED
            usage = record.output.get("usage") or {}
            record.completion_tokens = int(usage.get("completion_tokens") or 0)
        else:
            record.status = RequestStatus.FAILED
            error = record.output.get("error")
            message = error.get("message") if isinstance(error, dict) else None
            record.error = f"HTTP {out.status}: {message or 'upstream error'}"

    async def get_request_status(self, request_id: str) -> RequestStatus | None:
        record = self._records.get(request_id)
        return record.status if record else None

    async def get_request_result(self, request_id: str) -> Record | None:
        return self._records.get(request_id)

    async def cancel_request(self, request_id: str) -> bool:
        """Cancel a queued or running request; False if it is unknown or already finished."""
        task = self._tasks.get(request_id)
        if task is None:
            return False
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        record = self._records[request_id]
        if record.status in (RequestStatus.QUEUED, RequestStatus.RUNNING):
            record.status = RequestStatus.CANCELLED  # cancelled before its task ever ran
            record.finished_s = self._clock()
        return True

    async def process_request(
        self, prompt: str, sampling_params: dict[str, Any] | None = None, **metadata: Any
    ) -> dict[str, Any]:
        """Submit ``prompt`` and wait: ``{"request_id", "text", "usage", "instance", ...}``."""
        params = dict(sampling_params or {})
        request = RequestMetadata(
            request_id=metadata.pop("request_id", None) or uuid.uuid4().hex,
            prompt=prompt,
            max_tokens=params.pop("max_tokens", None),
            temperature=params.pop("temperature", 1.0),
            top_p=params.pop("top_p", 1.0),
            **metadata,
        )
        rid = await self.submit_request(request)
        task = self._tasks.get(rid)
        if task is not None:
            await asyncio.shield(task)
        record = self._records[rid]
        if record.status is not RequestStatus.COMPLETED:
            raise RequestFailed(f"request {rid} {record.status.value}: {record.error}")
        choices = record.output.get("choices") or [{}]
        return {
            "request_id": rid,
            "text": choices[0].get("text", ""),
            "finish_reason": choices[0].get("finish_reason"),
            "usage": record.output.get("usage"),
            "instance": record.instance,
            "prefill_instance": record.prefill_instance or None,
            "latency_ms": record.latency_ms,
        }

    # -- observation -------------------------------------------------------------------------
    def get_metrics(self) -> PerformanceMetrics:
        elapsed = self._clock() - (self._started_s or self._clock())
        metrics = summarize(list(self._records.values()), elapsed)
        known = [i for i in self._instances.values() if i.gpu_utilization > 0]
        if known:
            metrics.avg_gpu_utilization = sum(i.gpu_utilization for i in known) / len(known)
        memory = [i.gpu_memory_gb * i.gpu_count for i in self._instances.values()]
        metrics.total_gpu_memory_gb = sum(memory) if any(memory) else None
        kv = [s.kv_usage for s in self.state.engine_stats.values()]
        metrics.avg_kv_cache_usage = sum(kv) / len(kv) if kv else None
        return metrics

    def get_status(self) -> dict[str, Any]:
        records = self._records.values()
        return {
            "running": self._services is not None,
            "scheduling_policy": self._policy,
            "routing_strategy": self._routing,
            "pd_separation": self.settings.pd.enabled,
            "instances": len(self._instances),
            "pending_requests": sum(1 for r in records if r.status is RequestStatus.QUEUED),
            "running_requests": sum(1 for r in records if r.status is RequestStatus.RUNNING),
            "pools": self.state.scheduling_status(),
        }

    def get_instances(self) -> list[ExecutionInstance]:
        for instance in self._instances.values():
            instance.active_requests = self.state.tracker.in_flight(instance.url)
            instance.is_healthy = instance.url not in self.state.health.ejected
        return list(self._instances.values())

    def get_instance_metrics(self, instance_id: str) -> InstanceMetrics | None:
        instance = self._instances.get(instance_id)
        if instance is None:
            return None
        counters = self.state.tracker.counters(instance.url)
        done = [
            r.latency_ms
            for r in self._records.values()
            if r.instance == instance.instance_id and r.latency_ms is not None
        ]
        stats = self.state.engine_stats.get(instance.url)
        running = stats.running if stats else float(counters.in_flight)
        ttft = counters.ttft_ewma_s
        return InstanceMetrics(
            instance_id=instance.instance_id,
            total_requests_processed=counters.started,
            active_requests=counters.in_flight,
            failed_requests=counters.failed,
            avg_latency_ms=sum(done) / len(done) if done else 0.0,
            p95_latency_ms=percentile(done, 0.95),
            avg_ttft_ms=ttft * 1000 if ttft is not None else None,
            current_load=min(1.0, running / max(1, instance.max_concurrent_requests)),
            kv_cache_usage=stats.kv_usage if stats else None,
            is_healthy=instance.url not in self.state.health.ejected,
        )
