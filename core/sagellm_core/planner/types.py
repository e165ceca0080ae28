"""Inputs and outputs of the parallelism planner (frozen dataclasses, no I/O)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from sagellm_core.api.common import Architecture, ParallelismStrategy, Role


class WeightDType(StrEnum):
    """How the checkpoint's weights are stored; decides bytes per parameter."""

    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"
    FP8 = "fp8"
    INT8 = "int8"
    INT4 = "int4"
    AWQ = "awq"
    GPTQ = "gptq"


class KVCacheDType(StrEnum):
    """The KV-cache element type: ``auto`` (16-bit) or ``fp8`` (``--kv-cache-dtype fp8``)."""

    AUTO = "auto"
    FP8 = "fp8"


@dataclass(frozen=True)
class ModelShape:
    """Attention geometry the KV-cache size depends on."""

    layers: int
    attention_heads: int
    kv_heads: int
    head_dim: int


@dataclass(frozen=True)
class PlanRequest:
    """Everything the planner needs. Sizes left ``None`` are chosen by the planner."""

    params_b: float
    gpu_memory_gib: float
    gpus_per_node: int
    architecture: Architecture = Architecture.DENSE
    experts: int | None = None
    dtype: WeightDType = WeightDType.BF16
    kv_cache_dtype: KVCacheDType = KVCacheDType.AUTO
    max_model_len: int = 8192
    shape: ModelShape | None = None
    gpus_available: int | None = None
    role: Role = Role.GENERAL
    strategy: ParallelismStrategy = ParallelismStrategy.AUTO
    tensor: int | None = None
    pipeline: int | None = None
    data: int | None = None
    expert: int | None = None
    gpu_memory_utilization: float = 0.9

    @property
    def is_moe(self) -> bool:
        return self.architecture == Architecture.MOE

    def to_dict(self) -> dict[str, Any]:
        """The planning facts (sizes and strategy are reported by the plan itself)."""
        return {
            "params_b": self.params_b,
            "architecture": str(self.architecture),
            "experts": self.experts,
            "dtype": str(self.dtype),
            "kv_cache_dtype": str(self.kv_cache_dtype),
            "max_model_len": self.max_model_len,
            "gpu_memory_gib": self.gpu_memory_gib,
            "gpus_per_node": self.gpus_per_node,
            "gpus_available": self.gpus_available,
            "gpu_memory_utilization": self.gpu_memory_utilization,
        }

    def pinned(self) -> dict[str, int]:
        """The explicit sizes the user gave, by name."""
        sizes = {
            "tensor": self.tensor,
            "pipeline": self.pipeline,
            "data": self.data,
            "expert": self.expert,
        }
        return {k: v for k, v in sizes.items() if v is not None}


@dataclass(frozen=True)
class Layout:
    """A parallel layout of one instance. EP reuses the TP×DP ranks (as vLLM does)."""

    tensor: int
    pipeline: int = 1
    data: int = 1
    expert_parallel: bool = False

    @property
    def shard(self) -> int:
        """GPUs holding one copy of the model (TP×PP)."""
        return self.tensor * self.pipeline

    @property
    def world(self) -> int:
        """GPUs of the whole instance (TP×PP×DP)."""
        return self.shard * self.data

    @property
    def expert(self) -> int:
        """Expert-parallel group size: TP×DP with EP enabled, else 1."""
        return self.tensor * self.data if self.expert_parallel else 1

    def nodes(self, gpus_per_node: int) -> int:
        return max(1, math.ceil(self.world / max(1, gpus_per_node)))

    def describe(self) -> str:
        parts = [f"TP{self.tensor}"]
        if self.pipeline > 1:
            parts.append(f"PP{self.pipeline}")
        if self.data > 1:
            parts.append(f"DP{self.data}")
        text = "×".join(parts)
        return f"{text} with EP{self.expert}" if self.expert_parallel else text


@dataclass(frozen=True)
class MemoryEstimate:
    """Per-GPU memory arithmetic for one layout (GiB unless named otherwise)."""

    budget_gib: float
    weights_gib: float
    overhead_gib: float
    kv_bytes_per_token: int
    kv_sequence_gib: float
    kv_cache_gib: float
    max_sequences: int

    @property
    def fits(self) -> bool:
        """At least one ``max_model_len`` sequence of KV fits next to weights and overhead."""
        return self.max_sequences >= 1

    def to_dict(self) -> dict[str, float]:
        return {
            "budget": round(self.budget_gib, 2),
            "weights": round(self.weights_gib, 2),
            "overhead": round(self.overhead_gib, 2),
            "kv_cache": round(self.kv_cache_gib, 2),
            "kv_per_sequence": round(self.kv_sequence_gib, 3),
        }


@dataclass(frozen=True)
class Plan:
    """The planner's answer. ``ok`` only when ``errors`` is empty."""

    request: PlanRequest
    shape: ModelShape
    shape_estimated: bool
    layout: Layout
    memory: MemoryEstimate
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    errors: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def gpus_per_instance(self) -> int:
        return self.layout.world

    @property
    def nodes_per_instance(self) -> int:
        return self.layout.nodes(self.request.gpus_per_node)

    def to_dict(self) -> dict[str, Any]:
        """Machine-readable plan with stable keys (used by ``sagellm plan -o json``)."""
        m, lay = self.memory, self.layout
        return {
            "ok": self.ok,
            "input": self.request.to_dict(),
            "role": str(self.request.role),
            "strategy": str(self.request.strategy),
            "layout": lay.describe(),
            "tensor": lay.tensor,
            "pipeline": lay.pipeline,
            "data": lay.data,
            "expert": lay.expert,
            "expert_parallel": lay.expert_parallel,
            "gpus_per_instance": self.gpus_per_instance,
            "nodes_per_instance": self.nodes_per_instance,
            "memory_per_gpu_gib": m.to_dict(),
            "kv_bytes_per_token_per_gpu": m.kv_bytes_per_token,
            "max_concurrent_sequences": m.max_sequences,
            "model_shape": {**asdict(self.shape), "estimated": self.shape_estimated},
            "reasons": list(self.reasons),
            "warnings": list(self.warnings),
            "errors": list(self.errors),
        }
