"""Between the API models and the planner: a pool spec → :class:`PlanRequest`, a plan → the
``RolePlan`` written to ``InferencePool.status.plan``, and a PD pool's compatibility check."""

from __future__ import annotations

from dataclasses import dataclass

from sagellm_core.api.common import Architecture, KVConnector, ParallelismStrategy, Role
from sagellm_core.api.pool import InferencePoolSpec, ModelSpec
from sagellm_core.api.pool_status import RolePlan
from sagellm_core.planner.core import plan
from sagellm_core.planner.memory import complete_shape
from sagellm_core.planner.pd import PDSide, pd_compatibility_errors
from sagellm_core.planner.types import ModelShape, Plan, PlanRequest, WeightDType

_DTYPES = {
    "auto": WeightDType.BF16,
    "bfloat16": WeightDType.BF16,
    "float16": WeightDType.FP16,
    "float32": WeightDType.FP32,
}


def weight_dtype(model: ModelSpec) -> WeightDType:
    """Quantization wins over dtype; ``auto`` is planned as 16-bit (what checkpoints ship)."""
    if model.quantization is not None:
        return WeightDType(model.quantization)
    return _DTYPES[model.dtype]


def model_shape(model: ModelSpec) -> ModelShape | None:
    """The shape the spec gives; missing fields are filled from the typical-shape table."""
    known = {
        "layers": model.layers,
        "attention_heads": model.attention_heads,
        "kv_heads": model.kv_heads,
        "head_dim": model.head_dim,
    }
    return complete_shape(model.parameters, known)


def request_for_role(
    spec: InferencePoolSpec, role: Role | str, gpus_available: int | None = None
) -> PlanRequest:
    """The planner input for one role of a pool (the role's parallelism, else the pool's)."""
    m, e, par = spec.model, spec.engine, spec.parallelism_for(role)
    return PlanRequest(
        params_b=m.parameters,
        gpu_memory_gib=e.gpu_memory_gib,
        gpus_per_node=e.gpus_per_node,
        architecture=Architecture(m.architecture),
        experts=m.experts,
        dtype=weight_dtype(m),
        max_model_len=m.max_model_len,
        shape=model_shape(m),
        gpus_available=gpus_available,
        role=Role(role),
        strategy=ParallelismStrategy(par.strategy),
        tensor=par.tensor,
        pipeline=par.pipeline,
        data=par.data,
        expert=par.expert,
        gpu_memory_utilization=e.gpu_memory_utilization,
    )


def role_plan(plan: Plan) -> RolePlan:
    """The status form of a plan (reasons, then warnings prefixed, then errors prefixed)."""
    lay = plan.layout
    notes = [*plan.reasons, *(f"warning: {w}" for w in plan.warnings)]
    notes += [f"error: {e}" for e in plan.errors]
    return RolePlan(
        role=plan.request.role,
        tensor=lay.tensor,
        pipeline=lay.pipeline,
        data=lay.data,
        expert=lay.expert,
        gpus_per_instance=plan.gpus_per_instance,
        nodes_per_instance=plan.nodes_per_instance,
        weight_gib_per_gpu=round(plan.memory.weights_gib, 2),
        kv_cache_gib_per_gpu=round(plan.memory.kv_cache_gib, 2),
        reasons=notes,
    )


def pool_pd_errors(spec: InferencePoolSpec, prefill: Plan, decode: Plan) -> list[str]:
    """PD compatibility of a disaggregated pool's two role plans (empty for General pools)."""
    if spec.roles.general is not None:
        return []
    m, e = spec.model, spec.engine
    dtype = m.quantization or m.dtype
    connector = spec.roles.kv_transfer.connector if spec.roles.kv_transfer else KVConnector.NIXL
    sides = [PDSide(m.name, dtype, e.block_size, p.layout.tensor) for p in (prefill, decode)]
    return pd_compatibility_errors(sides[0], sides[1], str(connector))


@dataclass(frozen=True)
class PoolPlan:
    """One plan per role of a pool, and the errors that make the pool unservable (each names
    the role and what to change). The operator writes this to status; ``sagellm plan -f`` prints
    the same."""

    plans: dict[Role, Plan]
    errors: tuple[str, ...]

    def max_gpus(self, spec: InferencePoolSpec) -> int:
        """GPUs the pool may use at max replicas (what autoscaling can reach)."""
        return sum(p.gpus_per_instance * spec.max_replicas_for(r) for r, p in self.plans.items())

    def status_plans(self) -> list[RolePlan]:
        """``InferencePool.status.plan``: one entry per role, in role order."""
        return [role_plan(p) for p in self.plans.values()]


def plan_pool(spec: InferencePoolSpec) -> PoolPlan:
    """Plan every role of a pool and check a disaggregated pool's two plans fit together."""
    plans = {Role(role): plan(request_for_role(spec, role)) for role in spec.role_names()}
    errors = [f"roles.{role.lower()}: {err}" for role, p in plans.items() for err in p.errors]
    if not errors and Role.PREFILL in plans:
        pd = pool_pd_errors(spec, plans[Role.PREFILL], plans[Role.DECODE])
        errors += [f"roles: {e}" for e in pd]
    return PoolPlan(plans, tuple(errors))
