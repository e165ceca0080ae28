"""The parallelism planner: chooses tensor/pipeline/data/expert sizes for a model on given GPUs
from the seed rules of thumb and per-GPU memory arithmetic, and explains every choice.

Pure functions over frozen dataclasses; see docs/planner.md.
"""

from sagellm_core.planner.adapter import (
    PoolPlan,
    plan_pool,
    pool_pd_errors,
    request_for_role,
    role_plan,
)
from sagellm_core.planner.core import plan
from sagellm_core.planner.pd import PDSide, pd_compatibility_errors
from sagellm_core.planner.types import (
    KVCacheDType,
    Layout,
    MemoryEstimate,
    ModelShape,
    Plan,
    PlanRequest,
    WeightDType,
)

__all__ = [
    "KVCacheDType",
    "Layout",
    "MemoryEstimate",
    "ModelShape",
    "PDSide",
    "Plan",
    "PlanRequest",
    "PoolPlan",
    "WeightDType",
    "pd_compatibility_errors",
    "plan",
    "plan_pool",
    "pool_pd_errors",
    "request_for_role",
    "role_plan",
]
