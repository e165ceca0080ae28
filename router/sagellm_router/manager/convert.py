"""From the embeddable API's types to the router core's (pure)."""

from __future__ import annotations

from collections.abc import Iterable

from sagellm_core.api.pool import SchedulingSpec
from sagellm_core.scheduling.metadata import BANDS
from sagellm_router.manager.types import (
    ExecutionInstance,
    ExecutionInstanceType,
    PDSeparationConfig,
    RequestMetadata,
)
from sagellm_router.types import Endpoint, PoolSnapshot, Role

ROLES = {
    ExecutionInstanceType.GENERAL: Role.GENERAL,
    ExecutionInstanceType.HYBRID: Role.GENERAL,
    ExecutionInstanceType.PREFILLING: Role.PREFILL,
    ExecutionInstanceType.DECODING: Role.DECODE,
}


def endpoint_of(instance: ExecutionInstance) -> Endpoint:
    limit = instance.max_concurrent_requests
    if instance.decoding_config and instance.decoding_config.max_parallel_requests:
        limit = instance.decoding_config.max_parallel_requests
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
    instances: Iterable[ExecutionInstance], policy: str, routing: str, pd: PDSeparationConfig
) -> list[PoolSnapshot]:
    """One pool per model name; its scheduling spec carries the policy and PD threshold."""
    by_model: dict[str, list[ExecutionInstance]] = {}
    for instance in instances:
        by_model.setdefault(instance.model_name, []).append(instance)
    pools = []
    for model, members in sorted(by_model.items()):
        prices = [i.cost_per_gpu_hour for i in members if i.cost_per_gpu_hour is not None]
        spec = SchedulingSpec(
            pd_threshold_mode="Auto" if pd.routing_policy == "adaptive" else "Fixed",
            pd_threshold_input_tokens=pd.prefilling_threshold_input_tokens,
            cost_per_gpu_hour=max(prices) if prices else None,
        ).model_copy(update={"policy": policy})  # not validated: plugin policies are plain names
        endpoints = tuple(endpoint_of(i) for i in sorted(members, key=lambda i: i.instance_id))
        task = "embed" if any(i.task == "embed" for i in members) else "generate"
        pools.append(
            PoolSnapshot(model, model, routing, policy, endpoints, scheduling=spec, task=task)
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
