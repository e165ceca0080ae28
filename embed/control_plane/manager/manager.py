"""``ControlPlaneManager``: the router core embedded in a Python program.

It runs the same pipeline as the HTTP router (``pipeline.handle``: admission queue and
scheduling policy, routing strategy, PD orchestration, proxy with retries), fed from
registered instances instead of discovery and writing answers into memory instead of an HTTP
response. Requests are OpenAI completions sent to the instances' HTTP API (or to in-process
engines).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import orjson

from control_plane.manager.convert import headers_of, pools_of, preferred_urls
from control_plane.manager.facades import LoadBalancer, RequestRouter
from control_plane.manager.lifecycle import Engines
from control_plane.manager.observe import healthy, instance_metrics, live_load, metrics_of
from control_plane.manager.records import Record
from control_plane.manager.requests import RequestFailed, completion_body, result_of
from control_plane.strategies import HybridSchedulingPolicy
from control_plane.types import (
    ExecutionInstance,
    InstanceMetrics,
    PDSeparationConfig,
    PerformanceMetrics,
    RequestMetadata,
    RequestStatus,
)
from sagellm_router.config import PdSettings, RouterSettings, ScrapeSettings
from sagellm_router.downstream import Collector, Downstream
from sagellm_router.errors import ApiError
from sagellm_router.pipeline import Job, handle
from sagellm_router.proxy import Exchange
from sagellm_router.state import RouterState, build_state
from sagellm_router.stats.tracker import Clock
from sagellm_router.validation import COMPLETIONS, parse_body

log = logging.getLogger(__name__)

Policy = str | HybridSchedulingPolicy

__all__ = ["ControlPlaneManager", "RequestFailed"]


class ControlPlaneManager:
    """Schedules and routes requests over registered instances (see the module docstring).

    ``enable_monitoring``: scrape every HTTP engine's ``/metrics`` (running, waiting, KV cache)
    for load, ``current_load`` and ``kv_cache_usage``; off, the manager counts only its own
    requests. Unknown keyword arguments raise ``TypeError``.
    """

    def __init__(
        self,
        scheduling_policy: Policy = "adaptive",
        routing_strategy: str = "load_balanced",
        enable_pd_separation: bool = True,
        pd_config: PDSeparationConfig | None = None,
        enable_monitoring: bool = True,
        *,
        settings: RouterSettings | None = None,
        default_max_tokens: int = 256,
        clock: Clock = time.monotonic,
    ) -> None:
        self.pd_config = pd_config or PDSeparationConfig(enabled=enable_pd_separation)
        pd = PdSettings(
            enabled=enable_pd_separation and self.pd_config.enabled,
            prefill_routing=self.pd_config.prefill_routing,
            decode_routing=self.pd_config.decode_routing,
        )
        base = settings or RouterSettings(scrape=ScrapeSettings(interval_s=0.5))
        scrape = base.scrape.model_copy(update={"enabled": enable_monitoring})
        routing = base.routing.model_copy(update={"default": routing_strategy})
        self.settings = base.model_copy(update={"pd": pd, "routing": routing, "scrape": scrape})
        self.state: RouterState = build_state(self.settings, clock)
        self._clock = clock
        self._policy = self._known_policy(scheduling_policy)
        self._routing = self._known_strategy(routing_strategy)
        self._default_max_tokens = default_max_tokens
        self._instances: dict[str, ExecutionInstance] = {}
        self._records: dict[str, Record] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._engines = Engines(self.state)
        self._started_s: float | None = None
        self.router = RequestRouter(self)
        self.load_balancer = LoadBalancer(self)

    # -- configuration -----------------------------------------------------------------------
    def _known_policy(self, policy: Policy) -> Policy:
        known = self.state.policy_names
        names = (
            [policy.llm_policy, policy.embedding_policy]
            if isinstance(policy, HybridSchedulingPolicy)
            else [policy]
        )
        for name in names:
            if name not in known:
                raise ValueError(f"unknown scheduling policy {name!r}; known: {', '.join(known)}")
        return policy

    def _known_strategy(self, name: str) -> str:
        if not self.state.strategies.knows(name):
            known = ", ".join(self.state.strategies.names)
            raise ValueError(f"unknown routing strategy {name!r}; known: {known}")
        return name

    def _policy_for(self, task: str) -> str:
        policy = self._policy
        return policy.for_task(task) if isinstance(policy, HybridSchedulingPolicy) else policy

    @property
    def policy_name(self) -> str:
        return (
            self._policy.name if isinstance(self._policy, HybridSchedulingPolicy) else self._policy
        )

    @property
    def routing_strategy(self) -> str:
        return self._routing

    @routing_strategy.setter
    def routing_strategy(self, name: str) -> None:
        self._routing = self._known_strategy(name)
        self._publish()

    def update_policy(self, policy: Policy) -> None:
        """Switch the scheduling policy of every pool now (queued requests are re-ranked)."""
        self._policy = self._known_policy(policy)
        for pool in self.state.table.pools:
            if pool.name in self.state.runtimes:
                self.state.set_policy(pool.name, self._policy_for(pool.task))
        self._publish()

    def register_instance(self, instance: ExecutionInstance) -> None:
        if not instance.model_name:
            raise ValueError(
                f"instance {instance.instance_id!r}: set model_name= to the model the engine "
                "serves (its /v1/models id) before registering it"
            )
        self._instances[instance.instance_id] = instance
        if self._started_s is not None and instance.executor == "inprocess":
            self._engines.start_local(instance)
        self._publish()

    def unregister_instance(self, instance_id: str) -> bool:
        instance = self._instances.pop(instance_id, None)
        self._publish()
        if instance is not None:
            task = self._engines.drop_local(instance)
            if task is not None:
                self._tasks[f"shutdown {instance_id}"] = task
        return instance is not None

    def _publish(self) -> None:
        pools = pools_of(self._instances.values(), self._policy_for, self._routing, self.pd_config)
        self.state.apply_pools(pools)

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._started_s is not None

    async def start(self) -> None:
        """Start health checks, monitoring and in-process engines (the first request does
        this when you have not)."""
        if self._started_s is not None:
            return
        await self._engines.start(self._instances.values())
        self._started_s = self._clock()
        log.info("control plane started", extra={"instances": len(self._instances)})

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._engines.stop()
        self._started_s = None

    # -- requests ----------------------------------------------------------------------------
    async def submit_request(self, request: RequestMetadata) -> str:
        """Queue ``request``; returns its id at once (poll ``get_request_status``).

        Raises ``ValueError`` at once for a request that cannot be sent (no prompt, no model,
        a reused id) rather than failing it later in the background.
        """
        if request.request_id in self._records:
            raise ValueError(f"request id {request.request_id!r} was already submitted")
        body = completion_body(request, self._instances.values(), self._default_max_tokens)
        await self.start()
        raw = orjson.dumps(body)
        prefer = preferred_urls(self._instances.values(), body["model"], request.parallelism_hint)
        job = Job(parse_body(raw, COMPLETIONS), raw, headers_of(request), prefer=prefer)
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
        await self.start()
        raw = orjson.dumps(body)
        parsed = parse_body(raw, path, self.settings.limits.max_embedding_inputs)
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        parsed.session_key = lowered.get("x-session-id") or parsed.session_key
        return await handle(self.state, self._engines.upstream, Job(parsed, raw, lowered), down)

    async def _run(self, record: Record, job: Job) -> None:
        def admitted(ex: object) -> None:
            record.status = RequestStatus.RUNNING

        out = Collector()
        try:
            hooked = replace(job, on_admitted=admitted)
            ex = await handle(self.state, self._engines.upstream, hooked, out)
            record.instance, record.prefill_instance = ex.instance, ex.prefill_instance
            record.finish(out.status, bytes(out.body))
        except ApiError as err:
            record.http_status, record.error = err.status, err.message
            record.status = RequestStatus.FAILED
        except asyncio.CancelledError:
            record.status = RequestStatus.CANCELLED
            raise
        finally:
            record.finished_s = self._clock()

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
        self, prompt: str, sampling_params: object = None, **metadata: Any
    ) -> dict[str, Any]:
        """Submit ``prompt`` and wait: ``{"request_id", "text", "usage", "instance", ...}``.

        ``sampling_params``: a ``SamplingParams`` (ours or vLLM's) or a dict of its fields;
        ``metadata``: ``RequestMetadata`` fields (``priority``, ``slo_deadline_ms``, ...).
        Raises ``RequestFailed`` when the request does not complete.
        """
        request = RequestMetadata(prompt=prompt, sampling_params=sampling_params, **metadata)
        rid = await self.submit_request(request)
        task = self._tasks.get(rid)
        if task is not None:
            await asyncio.shield(task)
        return result_of(self._records[rid])

    # -- observation -------------------------------------------------------------------------
    def get_metrics(self) -> PerformanceMetrics:
        elapsed = self._clock() - (self._started_s or self._clock())
        return metrics_of(self.state, self._instances.values(), self._records.values(), elapsed)

    def get_status(self) -> dict[str, Any]:
        records = self._records.values()
        instances = self.get_instances()
        return {
            "running": self.running,
            "scheduling_policy": self.policy_name,
            "routing_strategy": self._routing,
            "pd_separation": self.settings.pd.enabled,
            "monitoring": self.settings.scrape.enabled,
            "instances": len(instances),
            "available_instances": sum(1 for i in instances if i.is_available and i.is_healthy),
            "pending_requests": sum(1 for r in records if r.status is RequestStatus.QUEUED),
            "running_requests": sum(1 for r in records if r.status is RequestStatus.RUNNING),
            "pools": self.state.scheduling_status(),
        }

    def get_instances(self) -> list[ExecutionInstance]:
        """The registered instances with live ``active_requests``, ``current_load`` and
        ``is_healthy``."""
        for instance in self._instances.values():
            instance.active_requests = self.state.tracker.in_flight(instance.url)
            instance.current_load = live_load(self.state, instance)
            instance.is_healthy = healthy(self.state, instance)
        return list(self._instances.values())

    def get_instance_metrics(self, instance_id: str) -> InstanceMetrics:
        """Live numbers of one instance (``metrics.active_requests`` or
        ``metrics["active_requests"]``); ``KeyError`` naming the registered ids if unknown."""
        instance = self._instances.get(instance_id)
        if instance is None:
            known = ", ".join(sorted(self._instances)) or "none"
            raise KeyError(f"no instance {instance_id!r} is registered; registered: {known}")
        return instance_metrics(self.state, instance, self._records.values())
