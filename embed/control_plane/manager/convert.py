"""From the embeddable API's types to the router core's (pure)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from control_plane.types import (
    ExecutionInstance,
    ExecutionInstanceType,
    ParallelismType,
    PDSeparationConfig,
    RequestMetadata,
)
from sagellm_core.api.pool import SchedulingSpec
from sagellm_core.scheduling.metadata import BANDS
from sagellm_router.types import Endpoint, PoolSnapshot, Role

#: The scheduling policy name of a pool, given its task (``generate`` or ``embed``).
PolicyOf = Callable[[str], str]

ROLES = {
    ExecutionInstanceType.GENERAL: Role.GENERAL,
    ExecutionInstanceType.HYBRID: Role.GENERAL,
    ExecutionInstanceType.PREFILLING: Role.PREFILL,
    ExecutionInstanceType.DECODING: Role.DECODE,
}


def capacity(instance: ExecutionInstance) -> int:
    """Admission slots: ``decoding_config.max_parallel_requests``, else
    ``max_concurrent_requests``."""
    decoding = instance.decoding_config
    if decoding is not None and decoding.max_parallel_requests:
        return decoding.max_parallel_requests
    return instance.max_concurrent_requests


def endpoint_of(instance: ExecutionInstance) -> Endpoint:
    limit = capacity(instance)
    return Endpoint(
        url=instance.url,
        instance=instance.instance_id,
        role=ROLES[instance.instance_type],
        ready=instance.is_available,
        max_concurrency=limit,
        gpus=instance.gpu_count,
        tokens_per_s=instance.throughput_tokens_per_sec or None,
    )


def pools_of(
    instances: Iterable[ExecutionInstance], policy: PolicyOf, routing: str, pd: PDSeparationConfig
) -> list[PoolSnapshot]:
    """One pool per model name; its scheduling spec carries the policy and PD threshold."""
    by_model: dict[str, list[ExecutionInstance]] = {}
    for instance in instances:
        assert instance.model_name is not None  # register_instance refuses instances without
        by_model.setdefault(instance.model_name, []).append(instance)
    pools = []
    for model, members in sorted(by_model.items()):
        prices = [i.cost_per_gpu_hour for i in members if i.cost_per_gpu_hour is not None]
        task = "embed" if any(i.task == "embed" for i in members) else "generate"
        name = policy(task)
        spec = SchedulingSpec(
            pd_threshold_mode="Auto" if pd.routing_policy == "adaptive" else "Fixed",
            pd_threshold_input_tokens=pd.prefilling_threshold_input_tokens,
            cost_per_gpu_hour=max(prices) if prices else None,
        ).model_copy(update={"policy": name})  # not validated: plugin policies are plain names
        endpoints = tuple(endpoint_of(i) for i in sorted(members, key=lambda i: i.instance_id))
        pools.append(
            PoolSnapshot(model, model, routing, name, endpoints, scheduling=spec, task=task)
        )
    return pools


def headers_of(request: RequestMetadata) -> dict[str, str]:
    """The scheduling headers the pipeline reads (lower-case names)."""
    headers = {
        "x-request-id": request.request_id,
        "x-priority": BANDS[request.priority.value].value,
    }
    if request.user_id:
        headers["x-user-id"] = request.user_id
    if request.slo_deadline_ms is not None:
        headers["x-slo-deadline-ms"] = f"{request.slo_deadline_ms:g}"
    if request.cost_budget is not None:
        headers["x-cost-budget"] = f"{request.cost_budget:g}"
    return headers


def _matches(instance: ExecutionInstance, hint: ParallelismType) -> bool:
    sizes = {
        ParallelismType.TENSOR_PARALLEL: instance.tensor_parallel_size,
        ParallelismType.PIPELINE_PARALLEL: instance.pipeline_parallel_size,
        ParallelismType.DATA_PARALLEL: instance.data_parallel_size,
        ParallelismType.EXPERT_PARALLEL: instance.expert_parallel_size,
    }
    if hint is ParallelismType.HYBRID:
        return instance.parallelism is ParallelismType.HYBRID
    return sizes[hint] > 1


def preferred_urls(
    instances: Iterable[ExecutionInstance], model: str, hint: ParallelismType | None
) -> frozenset[str] | None:
    """The model's instances whose layout matches ``hint`` when the pool mixes layouts (some
    match, some do not); None means no preference (no hint, or nothing to choose between)."""
    if hint is None:
        return None
    members = [i for i in instances if i.model_name == model]
    matching = frozenset(i.url for i in members if _matches(i, hint))
    if not matching or len(matching) == len(members):
        return None
    return matching
