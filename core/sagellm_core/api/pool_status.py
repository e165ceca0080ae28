"""The parts of ``InferencePool.status`` the planner and the router read: plans and endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sagellm_core.api.common import ApiModel, Role


class RolePlan(ApiModel):
    """The planner's answer for one role."""

    role: Role
    tensor: int = Field(ge=1)
    pipeline: int = Field(ge=1)
    data: int = Field(ge=1)
    expert: int = Field(ge=1)
    gpus_per_instance: int = Field(ge=0)
    nodes_per_instance: int = Field(ge=1)
    weight_gib_per_gpu: float | None = Field(default=None, alias="weightGiBPerGPU")
    kv_cache_gib_per_gpu: float | None = Field(default=None, alias="kvCacheGiBPerGPU")
    reasons: list[str] = Field(default_factory=list)


class RoleStatus(ApiModel):
    role: Role
    desired: int = Field(ge=0)
    ready: int = Field(ge=0)


class Endpoint(ApiModel):
    """One serving endpoint; the router reads this list (and nothing of the spec)."""

    instance: str
    role: Role
    url: str
    ready: bool = False
    draining: bool = False
    max_concurrency: int | None = Field(
        default=None, ge=1,
        description="Requests the router lets run at once on this instance (decode "
        "maxParallelRequests, else --max-num-seqs, else vLLM's 256).",
    )  # fmt: skip


PoolPhase = Literal["Pending", "Progressing", "Ready", "Degraded", "Failed"]
