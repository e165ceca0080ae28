"""``ExecutionInstance``: one vLLM serving unit (one pod, or a multi-node group)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from sagellm_core.api.cel import cel_rules
from sagellm_core.api.common import ApiModel, Condition, ParallelismSizes, Role
from sagellm_core.api.labels import API_VERSION, INSTANCE_KIND
from sagellm_core.api.pool import EngineSpec, ModelSpec


class ExecutionInstanceSpec(ApiModel):
    """Written by the operator from its pool; users rarely create these by hand."""

    model_config = cel_rules(
        {"rule": "self.nodes <= 1 || has(self.workerArgs)",
         "message": "workerArgs is required when nodes > 1 (the LeaderWorkerSet workers' argv)",
         "fieldPath": ".workerArgs"},
    )  # fmt: skip

    pool: str = Field(min_length=1, max_length=253, description="Owning InferencePool.")
    role: Role = Role.GENERAL
    index: int = Field(default=0, ge=0)
    model: ModelSpec
    engine: EngineSpec = Field(default_factory=EngineSpec)
    parallelism: ParallelismSizes = Field(default_factory=ParallelismSizes)
    gpus_per_pod: int = Field(default=0, ge=0, le=64)
    nodes: int = Field(default=1, ge=1, le=1024)
    args: list[str] = Field(
        default_factory=list,
        description="Resolved engine argv (a multi-node instance's LeaderWorkerSet leader's).",
    )
    worker_args: list[str] | None = Field(
        default=None,
        description="Resolved argv of a multi-node instance's LeaderWorkerSet workers.",
    )
    drain_timeout_seconds: int = Field(
        default=600, ge=0, le=86400,
        description="Resolved drain bound (the pool's, else the operator's): sizes the pods' "
        "preStop wait and terminationGracePeriodSeconds.",
    )  # fmt: skip


InstancePhase = Literal["Pending", "Starting", "Ready", "Draining", "Failed"]


class ExecutionInstanceStatus(ApiModel):
    phase: InstancePhase = "Pending"
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    pod_names: list[str] = Field(default_factory=list)
    url: str | None = None
    ready: bool = False
    restarts: int = Field(default=0, ge=0)
    message: str = ""


class ExecutionInstance(ApiModel):
    api_version: Literal["sagellm.io/v1alpha1"] = API_VERSION
    kind: Literal["ExecutionInstance"] = INSTANCE_KIND
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: ExecutionInstanceSpec
    status: ExecutionInstanceStatus | None = None
