"""Planner: seed size table, GPU-count rules, memory overrides, worked examples."""

from __future__ import annotations

from typing import Any

import pytest

from sagellm_core.api.common import Architecture, Role
from sagellm_core.planner import Layout, ModelShape, PlanRequest, WeightDType, plan
from sagellm_core.planner.memory import (
    GIB,
    estimate,
    kv_bytes_per_token,
    weights_gib,
    weights_per_gpu_gib,
)
from sagellm_core.planner.rules import gpu_count_rule, size_table


def req(**kw: Any) -> PlanRequest:
    base: dict[str, Any] = {"params_b": 7, "gpu_memory_gib": 80, "gpus_per_node": 8}
    base.update(kw)
    return PlanRequest(**base)


def sizes(p: Any) -> tuple[int, int, int, int]:
    return (p.layout.tensor, p.layout.pipeline, p.layout.data, p.layout.expert)


def text(p: Any) -> str:
    return "\n".join(p.reasons + p.warnings + p.errors)


# Size table rows, each on a GPU where the row's layout is exactly what memory needs.
# (params, dtype, GiB per GPU, expected (TP, PP, DP, EP), phrase in reasons)
SIZE_TABLE_CASES = [
    (7, WeightDType.BF16, 80, (1, 1, 1, 1), "<10B → TP1"),
    (7, WeightDType.BF16, 16, (2, 1, 1, 1), "raised to TP2"),
    (20, WeightDType.BF16, 80, (4, 1, 1, 1), "10–30B → TP4"),
    (70, WeightDType.BF16, 80, (4, 1, 1, 1), "30–70B → TP4"),
    (70, WeightDType.BF16, 32, (8, 1, 1, 1), "raised to TP8"),
    (120, WeightDType.BF16, 40, (4, 2, 1, 1), "70–175B → TP4×PP2"),
    (405, WeightDType.BF16, 32, (8, 4, 1, 1), ">175B → TP8×PP4"),
]


@pytest.mark.parametrize(("params", "dtype", "mem", "expected", "phrase"), SIZE_TABLE_CASES)
def test_size_table_rows(
    params: float, dtype: WeightDType, mem: float, expected: tuple[int, ...], phrase: str
) -> None:
    p = plan(req(params_b=params, dtype=dtype, gpu_memory_gib=mem))
    assert p.ok, p.errors
    assert sizes(p) == expected
    assert phrase in text(p)
    assert p.memory.fits
    assert p.gpus_per_instance == expected[0] * expected[1]


@pytest.mark.parametrize(
    ("params", "row"),
    [(9.9, (1, 1)), (10, (4, 1)), (29.9, (4, 1)), (30, (4, 1)), (70, (4, 1)),
     (70.1, (4, 2)), (175, (4, 2)), (175.1, (8, 4)), (671, (8, 4))],
)  # fmt: skip
def test_size_table_boundaries(params: float, row: tuple[int, int]) -> None:
    r = size_table(params)
    assert (r.tensor, r.pipeline) == row


@pytest.mark.parametrize(
    ("gpus", "rule"),
    [(1, (1, 1, 1)), (2, (2, 1, 1)), (3, (2, 1, 1)), (4, (4, 1, 1)), (7, (4, 1, 1)),
     (8, (4, 1, 2)), (15, (4, 1, 3)), (16, (4, 2, 2)), (24, (4, 2, 3)), (64, (4, 2, 8))],
)  # fmt: skip
def test_gpu_count_rule_table(gpus: int, rule: tuple[int, int, int]) -> None:
    r = gpu_count_rule(gpus)
    assert (r.tensor, r.pipeline, r.data) == rule


# GPU-count rules reproduced where memory agrees with them.
GPU_COUNT_CASES = [
    (120, 40, 16, (4, 2, 2, 1)),  # 16+ → TP4 PP2, DP = 16 // 8
    (120, 40, 24, (4, 2, 3, 1)),  # 16+ → DP = 24 // 8
    (20, 80, 8, (4, 1, 2, 1)),  # 8–15 → TP4, DP = 8 // 4
    (20, 80, 12, (4, 1, 3, 1)),  # 8–15 → DP = 12 // 4
    (40, 80, 4, (4, 1, 1, 1)),  # 4–7 → TP4
    (40, 80, 6, (4, 1, 1, 1)),  # 4–7 → TP4 (2 GPUs idle)
    (7, 16, 2, (2, 1, 1, 1)),  # <4 → TP = min(gpus, 2)
    (7, 16, 3, (2, 1, 1, 1)),
    (1, 24, 1, (1, 1, 1, 1)),
]


@pytest.mark.parametrize(("params", "mem", "gpus", "expected"), GPU_COUNT_CASES)
def test_gpu_count_rules(params: float, mem: float, gpus: int, expected: tuple[int, ...]) -> None:
    p = plan(req(params_b=params, gpu_memory_gib=mem, gpus_available=gpus))
    assert p.ok, p.errors
    assert sizes(p) == expected
    assert "GPU-count rule" in text(p)
    assert p.gpus_per_instance <= gpus


def test_idle_gpus_are_reported() -> None:
    p = plan(req(params_b=40, gpus_available=6))
    assert any("2 of 6 GPUs stay idle" in w for w in p.warnings)


# Memory arithmetic overriding the seed rules, with the reason it gives.
OVERRIDE_CASES = [
    # 70–175B row says PP2, but TP4 alone fits on 80 GiB: pipeline stage dropped.
    ({"params_b": 120}, (4, 1, 1, 1), "PP1 rather than the table's PP2"),
    # Worked example: 405B BF16 on 80 GiB → TP8×PP2, not the table's PP4.
    ({"params_b": 405}, (8, 2, 1, 1), "PP2 rather than the table's PP4"),
    # Worked example: 405B FP8 fits one 8-GPU node.
    ({"params_b": 405, "dtype": WeightDType.FP8}, (8, 1, 1, 1), "PP1 rather than"),
    # The two rule sets disagree (TP1 vs TP4×PP2): memory picks the smaller copy, DP fills.
    ({"params_b": 7, "gpus_available": 16}, (1, 1, 16, 1), "memory decides for the smaller TP1"),
    # GPU-count rule TP4×PP2 cannot hold 405B; the table's (fitted) TP8×PP2 can.
    ({"params_b": 405, "gpus_available": 16}, (8, 2, 1, 1), "TP4×PP2 DP2 does not fit"),
    # The table wants 4 GPUs but only 2 exist: the count rule's TP2 fits.
    ({"params_b": 20, "gpus_available": 2}, (2, 1, 1, 1), "needs 4 GPUs; only 2 available"),
    # INT4 70B is looked up as an 18B 16-bit model: TP4 row; AWQ alike.
    ({"params_b": 70, "dtype": WeightDType.INT4}, (4, 1, 1, 1), "18.375B at 16 bits"),
    # TP must divide the heads: 28 heads → TP4 instead of the TP8 row; PP3 (2 nodes × 6) fits.
    (
        {"params_b": 300, "shape": ModelShape(64, 28, 4, 128)},
        (4, 3, 1, 1),
        "size-table TP8 is not usable",
    ),
]


@pytest.mark.parametrize(("kw", "expected", "reason"), OVERRIDE_CASES)
def test_memory_overrides_rules(kw: dict[str, Any], expected: tuple[int, ...], reason: str) -> None:
    p = plan(req(**kw))
    assert p.ok, p.errors
    assert sizes(p) == expected
    assert reason in text(p), text(p)


def test_worked_example_70b_bf16_h100_is_tp4_and_tp2_is_tight() -> None:
    p = plan(req(params_b=70))
    assert sizes(p) == (4, 1, 1, 1)
    assert p.memory.weights_gib == pytest.approx(70e9 * 2 / GIB / 4)
    assert p.memory.kv_cache_gib > 30  # ≈ 35 GiB left for KV at TP4
    tp2 = estimate(p.request, p.shape, Layout(2))
    assert tp2.kv_cache_gib < 5  # TP2 leaves almost nothing for KV


def test_tp_capped_by_gpus_per_node_goes_multi_node() -> None:
    p = plan(req(params_b=405, gpus_per_node=4, gpu_memory_gib=80))
    assert p.ok
    assert p.layout.tensor == 4
    assert p.layout.pipeline == 3
    assert p.nodes_per_instance == 3
    assert "TP must be ≤ 4 GPUs per node" in text(p)


def test_kv_bytes_per_token_matches_reference_examples() -> None:
    llama8b = ModelShape(32, 32, 8, 128)
    llama70b = ModelShape(80, 64, 8, 128)
    assert kv_bytes_per_token(llama8b, Layout(1), plan(req()).request.kv_cache_dtype) == 128 * 1024
    kv = req().kv_cache_dtype
    assert kv_bytes_per_token(llama70b, Layout(1), kv) == 320 * 1024
    assert kv_bytes_per_token(llama70b, Layout(4), kv) == 80 * 1024
    # PP splits layers; KV heads replicate once TP exceeds them.
    assert kv_bytes_per_token(llama70b, Layout(4, 2), kv) == 40 * 1024
    assert kv_bytes_per_token(ModelShape(32, 32, 2, 128), Layout(8), kv) == 2 * 32 * 1 * 128 * 2


@pytest.mark.parametrize(
    ("dtype", "gib"),
    [(WeightDType.BF16, 130.39), (WeightDType.FP16, 130.39), (WeightDType.FP8, 65.19),
     (WeightDType.INT8, 65.19), (WeightDType.INT4, 34.22), (WeightDType.AWQ, 34.22),
     (WeightDType.GPTQ, 34.22), (WeightDType.FP32, 260.77)],
)  # fmt: skip
def test_weight_bytes_per_dtype(dtype: WeightDType, gib: float) -> None:
    assert weights_gib(70, dtype) == pytest.approx(gib, abs=0.01)


def test_moe_expert_parallel_weights_shrink_with_dp() -> None:
    r = req(params_b=47, architecture=Architecture.MOE, experts=8)
    tp4 = weights_per_gpu_gib(r, Layout(4, 1, 1, True))
    tp4_dp2 = weights_per_gpu_gib(r, Layout(4, 1, 2, True))
    assert tp4 == pytest.approx(weights_gib(47, WeightDType.BF16) / 4)
    assert tp4_dp2 == pytest.approx(tp4 * (0.1 + 0.9 / 2))


MOE_CASES = [
    ({}, (4, 1, 1, 4)),
    ({"gpus_available": 8}, (4, 1, 2, 8)),
    ({"gpus_available": 16}, (4, 1, 4, 16)),
]


@pytest.mark.parametrize(("kw", "expected"), MOE_CASES)
def test_moe_auto_is_ep_plus_tp(kw: dict[str, Any], expected: tuple[int, ...]) -> None:
    p = plan(req(params_b=47, architecture=Architecture.MOE, experts=64, **kw))
    assert p.ok, p.errors
    assert p.layout.expert_parallel
    assert sizes(p) == expected
    assert "MoE model → EP+TP" in text(p)


@pytest.mark.parametrize(
    ("experts", "expected", "reason"),
    [(8, (4, 1, 2, 8), "DP capped at 2"), (2, (4, 1, 4, 1), "EP off: TP4 already exceeds")],
)
def test_moe_auto_keeps_ep_within_experts(
    experts: int, expected: tuple[int, ...], reason: str
) -> None:
    p = plan(req(params_b=47, architecture=Architecture.MOE, experts=experts, gpus_available=16))
    assert p.ok, p.errors
    assert sizes(p) == expected
    assert reason in text(p)


def test_decode_role_with_little_kv_is_warned() -> None:
    from sagellm_core.api.common import ParallelismStrategy

    p = plan(req(params_b=70, role=Role.DECODE, strategy=ParallelismStrategy.TP, tensor=2))
    assert p.ok
    assert p.memory.max_sequences == 3
    assert any("decode instance fits only 3" in w for w in p.warnings)


def test_estimated_shape_is_named_and_given_shape_is_used() -> None:
    est = plan(req(params_b=8))
    assert est.shape_estimated
    assert "Llama-3.1-8B-like" in text(est)
    given = plan(req(params_b=8, shape=ModelShape(36, 32, 8, 128)))
    assert not given.shape_estimated
    assert given.memory.kv_bytes_per_token == 2 * 36 * 8 * 128 * 2
