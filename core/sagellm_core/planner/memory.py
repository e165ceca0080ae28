"""Memory arithmetic: weights, overhead and KV cache per GPU for a layout.

Constants are planner heuristics (see docs/planner.md); calibrate them against vLLM's
"Available KV cache memory" start-up log line.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Final

from sagellm_core.planner.types import (
    KVCacheDType,
    Layout,
    MemoryEstimate,
    ModelShape,
    PlanRequest,
    WeightDType,
)

GIB: Final = 1024**3
ACTIVATION_OVERHEAD_GIB: Final = 2.0
"""Activations, sampler and CUDA graphs, reserved on every GPU."""
COMM_OVERHEAD_GIB: Final = 0.5
"""NCCL / custom all-reduce buffers, reserved when TP > 1 or EP is on."""
MOE_EXPERT_FRACTION: Final = 0.9
"""Share of an MoE model's parameters that sit in experts (Mixtral ≈ 0.96, DeepSeek-V3 ≈ 0.97)."""
INT4_SCALE_OVERHEAD: Final = 1.05
"""INT4 checkpoints carry scales and zero points: about +5%."""

BYTES_PER_PARAM: Final[dict[WeightDType, float]] = {
    WeightDType.FP32: 4.0,
    WeightDType.BF16: 2.0,
    WeightDType.FP16: 2.0,
    WeightDType.FP8: 1.0,
    WeightDType.INT8: 1.0,
    WeightDType.INT4: 0.5 * INT4_SCALE_OVERHEAD,
    WeightDType.AWQ: 0.5 * INT4_SCALE_OVERHEAD,
    WeightDType.GPTQ: 0.5 * INT4_SCALE_OVERHEAD,
}

KV_BYTES: Final[dict[KVCacheDType, int]] = {KVCacheDType.AUTO: 2, KVCacheDType.FP8: 1}

# Typical Llama-like shapes by parameter count (billions): (upper bound, shape, example).
SHAPE_TABLE: Final[tuple[tuple[float, ModelShape, str], ...]] = (
    (1.5, ModelShape(16, 32, 8, 64), "Llama-3.2-1B"),
    (4.0, ModelShape(28, 24, 8, 128), "Llama-3.2-3B"),
    (10.0, ModelShape(32, 32, 8, 128), "Llama-3.1-8B"),
    (20.0, ModelShape(40, 40, 8, 128), "Llama-2-13B with GQA"),
    (40.0, ModelShape(64, 40, 8, 128), "Qwen2.5-32B"),
    (80.0, ModelShape(80, 64, 8, 128), "Llama-3.1-70B"),
    (200.0, ModelShape(96, 96, 8, 128), "GPT-3-175B-like with GQA"),
    (math.inf, ModelShape(126, 128, 8, 128), "Llama-3.1-405B"),
)


def estimate_shape(params_b: float) -> tuple[ModelShape, str]:
    """A typical shape for a model of this size, and the model it is modelled on."""
    for bound, shape, example in SHAPE_TABLE:
        if params_b <= bound:
            return shape, example
    raise AssertionError("SHAPE_TABLE ends with an infinite bound")  # pragma: no cover


def complete_shape(params_b: float, known: dict[str, int | None]) -> ModelShape | None:
    """``None`` if no shape field is known; else the typical shape with the known fields set."""
    given = {k: v for k, v in known.items() if v is not None}
    if not given:
        return None
    return replace(estimate_shape(params_b)[0], **given)


def weights_gib(params_b: float, dtype: WeightDType) -> float:
    """Total weight memory of the checkpoint."""
    return params_b * 1e9 * BYTES_PER_PARAM[dtype] / GIB


def weights_per_gpu_gib(req: PlanRequest, layout: Layout) -> float:
    """Weights / (TP×PP); with EP, expert weights are further split over the DP ranks."""
    total = weights_gib(req.params_b, req.dtype)
    if req.is_moe and layout.expert_parallel:
        dense = total * (1 - MOE_EXPERT_FRACTION) / layout.shard
        experts = total * MOE_EXPERT_FRACTION / (layout.shard * layout.data)
        return dense + experts
    return total / layout.shard


def kv_bytes_per_token(shape: ModelShape, layout: Layout, kv_dtype: KVCacheDType) -> int:
    """2 (K and V) × layers of the largest stage × KV heads per GPU × head_dim × bytes."""
    layers = math.ceil(shape.layers / layout.pipeline)
    kv_heads = max(1, shape.kv_heads // layout.tensor)
    return 2 * layers * kv_heads * shape.head_dim * KV_BYTES[kv_dtype]


def overhead_gib(layout: Layout) -> float:
    comm = COMM_OVERHEAD_GIB if layout.tensor > 1 or layout.expert_parallel else 0.0
    return ACTIVATION_OVERHEAD_GIB + comm


def estimate(req: PlanRequest, shape: ModelShape, layout: Layout) -> MemoryEstimate:
    """Budget = util × GPU memory; KV gets what weights and overhead leave."""
    budget = req.gpu_memory_utilization * req.gpu_memory_gib
    weights = weights_per_gpu_gib(req, layout)
    overhead = overhead_gib(layout)
    per_token = kv_bytes_per_token(shape, layout, req.kv_cache_dtype)
    per_seq = per_token * req.max_model_len / GIB
    kv_cache = budget - weights - overhead
    max_seqs = math.floor(kv_cache / per_seq) if kv_cache > 0 and per_seq > 0 else 0
    return MemoryEstimate(
        budget_gib=budget,
        weights_gib=weights,
        overhead_gib=overhead,
        kv_bytes_per_token=per_token,
        kv_sequence_gib=per_seq,
        kv_cache_gib=kv_cache,
        max_sequences=max_seqs,
    )


def max_fitting_len(req: PlanRequest, shape: ModelShape, layout: Layout) -> int:
    """The largest ``max_model_len`` one sequence of which fits at this layout (0 if none)."""
    est = estimate(req, shape, layout)
    if est.kv_cache_gib <= 0:
        return 0
    return int(est.kv_cache_gib * GIB // est.kv_bytes_per_token)
