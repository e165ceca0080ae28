"""Shared building blocks of the ``sagellm.io/v1alpha1`` API: enums, base model, conditions."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """Base for every API object: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as Kubernetes stores it: camelCase keys, unset optionals omitted."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class Role(StrEnum):
    """What an instance does: full requests, or one half of a disaggregated request."""

    GENERAL = "General"
    PREFILL = "Prefill"
    DECODE = "Decode"


class EngineKind(StrEnum):
    VLLM = "vLLM"
    SIMULATOR = "Simulator"


class Architecture(StrEnum):
    DENSE = "Dense"
    MOE = "MoE"


class ParallelismStrategy(StrEnum):
    AUTO = "Auto"
    TP = "TP"
    PP = "PP"
    DP = "DP"
    EP = "EP"
    HYBRID = "Hybrid"


class SchedulingPolicy(StrEnum):
    FIFO = "fifo"
    PRIORITY = "priority"
    SLO_AWARE = "slo_aware"
    COST_OPTIMIZED = "cost_optimized"
    ADAPTIVE = "adaptive"


class RoutingStrategy(StrEnum):
    LOAD_BALANCED = "load_balanced"
    ROUND_ROBIN = "round_robin"
    RANDOM = "random"
    AFFINITY = "affinity"
    LOCALITY = "locality"
    POWER_OF_TWO = "power_of_two"
    WEIGHTED_ROUND_ROBIN = "weighted_round_robin"
    PREFIX_AWARE = "prefix_aware"
    KV_AWARE = "kv_aware"


class Priority(StrEnum):
    CRITICAL = "CRITICAL"
    HIGH = "HIGH"
    NORMAL = "NORMAL"
    LOW = "LOW"
    BACKGROUND = "BACKGROUND"


class KVConnector(StrEnum):
    NIXL = "NixlConnector"
    P2P_NCCL = "P2pNcclConnector"
    LMCACHE = "LMCacheConnectorV1"
    MOONCAKE = "MooncakeConnector"


DType = Literal["auto", "bfloat16", "float16", "float32"]
Quantization = Literal["fp8", "awq", "gptq", "int8", "int4"]
ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """A Kubernetes-style condition (``metav1.Condition`` shape)."""

    type: str
    status: ConditionStatus
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = ""
    last_transition_time: str | None = None
    observed_generation: int | None = None


class ParallelismSizes(ApiModel):
    """A resolved parallelism layout of one instance."""

    tensor: int = Field(default=1, ge=1, le=64)
    pipeline: int = Field(default=1, ge=1, le=64)
    data: int = Field(default=1, ge=1, le=1024)
    expert: int = Field(default=1, ge=1, le=1024)
