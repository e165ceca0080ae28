"""What ``ControlPlaneManager`` reports: metrics, status and per-instance numbers (pure reads
of the router state and the manager's request records)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from control_plane.manager.convert import capacity
from control_plane.manager.records import Record, percentile, summarize
from control_plane.types import ExecutionInstance, InstanceMetrics, PerformanceMetrics
from sagellm_router.state import RouterState

#: The share of GPU memory vLLM reserves when ``engine_args`` do not say
#: (``--gpu-memory-utilization``'s default).
VLLM_GPU_MEMORY_UTILIZATION = 0.9


def live_load(state: RouterState, instance: ExecutionInstance) -> float:
    """Busy share of the instance's slots now: the larger of the requests this process has in
    flight there and the engine's scraped ``num_requests_running``, over its capacity."""
    in_flight = state.tracker.in_flight(instance.url)
    stats = state.engine_stats.get(instance.url)
    running = max(float(in_flight), stats.running if stats else 0.0)
    return min(1.0, running / max(1, capacity(instance)))


def healthy(state: RouterState, instance: ExecutionInstance) -> bool:
    return instance.url not in state.health.ejected


def metrics_of(
    state: RouterState,
    instances: Iterable[ExecutionInstance],
    records: Iterable[Record],
    elapsed_s: float,
) -> PerformanceMetrics:
    """Request counts and latencies from ``records``; resources from the instances.

    ``avg_gpu_utilization`` is the mean busy share of the instances' slots (engines do not
    export GPU utilisation; a declared ``ExecutionInstance.gpu_utilization`` wins);
    ``used_gpu_memory_gb`` the memory vLLM reserves on the healthy instances (declared
    ``gpu_memory_gb`` × ``gpu_count`` × ``gpu_memory_utilization``); ``cost_per_token`` the
    instances' GPU-hour price over the elapsed time, per completed token (0 without prices).
    """
    members = list(instances)
    metrics = summarize(list(records), elapsed_s)
    if members:
        loads = [i.gpu_utilization or live_load(state, i) for i in members]
        metrics.avg_gpu_utilization = sum(loads) / len(loads)
    metrics.total_gpu_memory_gb = sum(i.gpu_memory_gb * i.gpu_count for i in members)
    metrics.used_gpu_memory_gb = sum(
        i.gpu_memory_gb * i.gpu_count * _reserved_share(i.engine_args)
        for i in members
        if healthy(state, i)
    )
    kv = [s.kv_usage for s in state.engine_stats.values()]
    metrics.avg_kv_cache_usage = sum(kv) / len(kv) if kv else None
    per_hour = sum((i.cost_per_gpu_hour or 0.0) * i.gpu_count for i in members)
    tokens = metrics.tokens_per_second * elapsed_s
    metrics.cost_per_token = per_hour * elapsed_s / 3600.0 / tokens if tokens > 0 else 0.0
    return metrics


def _reserved_share(engine_args: Mapping[str, object]) -> float:
    value = engine_args.get("gpu_memory_utilization", VLLM_GPU_MEMORY_UTILIZATION)
    return float(value) if isinstance(value, int | float) else VLLM_GPU_MEMORY_UTILIZATION


def instance_metrics(
    state: RouterState, instance: ExecutionInstance, records: Iterable[Record]
) -> InstanceMetrics:
    counters = state.tracker.counters(instance.url)
    done = [
        r.latency_ms
        for r in records
        if r.instance == instance.instance_id and r.latency_ms is not None
    ]
    stats = state.engine_stats.get(instance.url)
    ttft = counters.ttft_ewma_s
    return InstanceMetrics(
        instance_id=instance.instance_id,
        total_requests_processed=counters.started,
        active_requests=counters.in_flight,
        failed_requests=counters.failed,
        avg_latency_ms=sum(done) / len(done) if done else 0.0,
        p95_latency_ms=percentile(done, 0.95),
        avg_ttft_ms=ttft * 1000 if ttft is not None else None,
        current_load=live_load(state, instance),
        kv_cache_usage=stats.kv_usage if stats else None,
        is_healthy=healthy(state, instance),
    )
