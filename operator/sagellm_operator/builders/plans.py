"""Per-role planning: pool spec → planner requests → plans, PD compatibility, status entries.

Inputs: a parsed :class:`InferencePoolSpec`. Output: one :class:`Plan` per role, or the errors
that make the pool unservable (each names the role and what to change).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sagellm_core.api import InferencePoolSpec, Role, RolePlan
from sagellm_core.api import labels as L
from sagellm_core.planner import (
    PDSide,
    Plan,
    PlanRequest,
    WeightDType,
    pd_compatibility_errors,
    plan,
)
from sagellm_core.planner.types import ModelShape

_DTYPES = {"bfloat16": WeightDType.BF16, "float16": WeightDType.FP16, "auto": WeightDType.BF16,
           "float32": WeightDType.FP32}  # fmt: skip


@dataclass(frozen=True)
class PoolPlan:
    plans: dict[Role, Plan]
    errors: tuple[str, ...]


def _shape(spec: InferencePoolSpec) -> ModelShape | None:
    m = spec.model
    if m.layers and m.attention_heads and m.head_dim:
        return ModelShape(m.layers, m.attention_heads, m.kv_heads or m.attention_heads, m.head_dim)
    return None


def plan_request(spec: InferencePoolSpec, role: Role) -> PlanRequest:
    par = spec.parallelism_for(role)
    m, e = spec.model, spec.engine
    dtype = WeightDType(m.quantization) if m.quantization else _DTYPES[m.dtype]
    return PlanRequest(
        params_b=m.parameters, gpu_memory_gib=e.gpu_memory_gib, gpus_per_node=e.gpus_per_node,
        architecture=m.architecture, experts=m.experts, dtype=dtype,
        max_model_len=m.max_model_len, shape=_shape(spec), role=role, strategy=par.strategy,
        tensor=par.tensor, pipeline=par.pipeline, data=par.data, expert=par.expert,
        gpu_memory_utilization=e.gpu_memory_utilization,
    )  # fmt: skip


def plan_pool(spec: InferencePoolSpec) -> PoolPlan:
    plans = {role: plan(plan_request(spec, role)) for role in spec.role_names()}
    errors = [f"roles.{role.lower()}: {err}" for role, p in plans.items() for err in p.errors]
    if not errors and Role.PREFILL in plans:
        errors += _pd_errors(spec, plans[Role.PREFILL], plans[Role.DECODE])
    return PoolPlan(plans, tuple(errors))


def limit_errors(pool_name: str, pools: PoolPlan, max_nodes: int) -> list[str]:
    """Plans the operator will not run: more nodes per instance than ``max_nodes`` (with the
    planner's fix for that limit), or a multi-node group whose derived names would not fit."""
    errors = []
    for role, p in pools.plans.items():
        nodes = p.nodes_per_instance
        if nodes > max_nodes:
            limit = max_nodes * p.request.gpus_per_node
            fix = plan(replace(p.request, gpus_available=limit)).errors
            errors.append(
                f"roles.{role.lower()}: the plan {p.layout.describe()} needs {nodes} nodes per "
                f"instance, more than this operator's maximum of {max_nodes} "
                f"(--max-nodes-per-instance). " + (fix[-1] if fix else "Use larger GPUs.")
            )
        elif nodes > 1 and len(pool_name) > L.MAX_MULTI_NODE_POOL_NAME:
            errors.append(
                f"roles.{role.lower()}: the plan needs {nodes} nodes, run as a LeaderWorkerSet "
                f"whose StatefulSet names need a pool name of at most "
                f"{L.MAX_MULTI_NODE_POOL_NAME} characters; {pool_name!r} has {len(pool_name)}"
            )
    return errors


def _pd_errors(spec: InferencePoolSpec, prefill: Plan, decode: Plan) -> list[str]:
    def side(p: Plan) -> PDSide:
        return PDSide(spec.model.name, spec.model.dtype, spec.engine.block_size, p.layout.tensor)

    kv = spec.roles.kv_transfer
    connector = str(kv.connector) if kv else "NixlConnector"
    return [f"roles: {e}" for e in pd_compatibility_errors(side(prefill), side(decode), connector)]


def role_plan(role: Role, p: Plan) -> RolePlan:
    """The status entry for one role's plan."""
    return RolePlan(
        role=role, tensor=p.layout.tensor, pipeline=p.layout.pipeline, data=p.layout.data,
        expert=p.layout.expert, gpus_per_instance=p.gpus_per_instance,
        nodes_per_instance=p.nodes_per_instance,
        weight_gib_per_gpu=round(p.memory.weights_gib, 2),
        kv_cache_gib_per_gpu=round(p.memory.kv_cache_gib, 2), reasons=list(p.reasons),
    )  # fmt: skip
