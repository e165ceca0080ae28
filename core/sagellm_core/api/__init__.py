"""The ``sagellm.io/v1alpha1`` API: typed models for InferencePool and ExecutionInstance."""

from sagellm_core.api.common import (
    Architecture,
    Condition,
    EngineKind,
    KVConnector,
    ParallelismSizes,
    ParallelismStrategy,
    Priority,
    Role,
    RoutingStrategy,
    SchedulingPolicy,
)
from sagellm_core.api.instance import (
    ExecutionInstance,
    ExecutionInstanceSpec,
    ExecutionInstanceStatus,
)
from sagellm_core.api.pool import (
    EngineSpec,
    InferencePool,
    InferencePoolSpec,
    InferencePoolStatus,
    ModelSpec,
    ParallelismSpec,
    RolesSpec,
    SchedulingSpec,
)
from sagellm_core.api.pool_status import Endpoint, RolePlan, RoleStatus

__all__ = [
    "Architecture",
    "Condition",
    "Endpoint",
    "EngineKind",
    "EngineSpec",
    "ExecutionInstance",
    "ExecutionInstanceSpec",
    "ExecutionInstanceStatus",
    "InferencePool",
    "InferencePoolSpec",
    "InferencePoolStatus",
    "KVConnector",
    "ModelSpec",
    "ParallelismSizes",
    "ParallelismSpec",
    "ParallelismStrategy",
    "Priority",
    "Role",
    "RolePlan",
    "RoleStatus",
    "RolesSpec",
    "RoutingStrategy",
    "SchedulingPolicy",
    "SchedulingSpec",
]
