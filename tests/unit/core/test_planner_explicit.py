"""Planner: explicit strategies, impossible requests, bad input, PD compatibility."""

from __future__ import annotations

from typing import Any

import pytest

from sagellm_core.api.common import Architecture
from sagellm_core.api.common import ParallelismStrategy as S
from sagellm_core.planner import (
    KVCacheDType,
    ModelShape,
    PDSide,
    PlanRequest,
    WeightDType,
    pd_compatibility_errors,
    plan,
)

MOE: dict[str, Any] = {"architecture": Architecture.MOE, "experts": 8, "params_b": 47}


def req(**kw: Any) -> PlanRequest:
    base: dict[str, Any] = {"params_b": 7, "gpu_memory_gib": 80, "gpus_per_node": 8}
    base.update(kw)
    return PlanRequest(**base)


def sizes(p: Any) -> tuple[int, int, int, int]:
    return (p.layout.tensor, p.layout.pipeline, p.layout.data, p.layout.expert)


EXPLICIT_OK = [
    ({"params_b": 70, "strategy": S.TP}, (4, 1, 1, 1)),
    ({"params_b": 70, "strategy": S.TP, "tensor": 8}, (8, 1, 1, 1)),
    ({"params_b": 70, "strategy": S.PP}, (1, 2, 1, 1)),
    ({"params_b": 7, "strategy": S.DP, "gpus_available": 4}, (1, 1, 4, 1)),
    ({"params_b": 7, "strategy": S.DP, "data": 3}, (1, 1, 3, 1)),
    ({**MOE, "strategy": S.EP, "gpus_available": 8}, (4, 1, 2, 8)),
    ({**MOE, "strategy": S.EP, "tensor": 1, "expert": 8}, (1, 1, 8, 8)),
    ({**MOE, "strategy": S.EP, "tensor": 2, "data": 4, "expert": 8}, (2, 1, 4, 8)),
    ({"params_b": 405, "strategy": S.HYBRID, "tensor": 8, "pipeline": 2}, (8, 2, 1, 1)),
    ({"params_b": 405, "strategy": S.HYBRID, "tensor": 8}, (8, 2, 1, 1)),
    ({"params_b": 405, "strategy": S.HYBRID}, (8, 2, 1, 1)),
    ({**MOE, "strategy": S.HYBRID, "tensor": 4, "expert": 1}, (4, 1, 1, 1)),
    ({**MOE, "strategy": S.HYBRID, "tensor": 4}, (4, 1, 1, 4)),
    ({**MOE, "strategy": S.TP, "tensor": 4}, (4, 1, 1, 1)),
]


@pytest.mark.parametrize(("kw", "expected"), EXPLICIT_OK)
def test_explicit_strategies(kw: dict[str, Any], expected: tuple[int, ...]) -> None:
    p = plan(req(**kw))
    assert p.ok, p.errors
    assert sizes(p) == expected
    assert any(f"strategy {kw['strategy']}" in r or "Auto" in r for r in p.reasons)


# (request, phrases every one of which must appear in one error)
ERROR_CASES = [
    # Strategy/size disagreement.
    ({"strategy": S.TP, "pipeline": 2}, ["strategy TP with pipeline=2", "Hybrid"]),
    ({"strategy": S.PP, "tensor": 2}, ["strategy PP with tensor=2"]),
    ({"strategy": S.DP, "tensor": 2}, ["strategy DP with tensor=2"]),
    ({"strategy": S.AUTO, "tensor": 4}, ["need a strategy other than Auto"]),
    ({"strategy": S.EP}, ["expert parallelism needs a MoE model"]),
    ({"strategy": S.HYBRID, "tensor": 1, "expert": 8}, ["needs a MoE model"]),
    ({**MOE, "strategy": S.EP, "tensor": 2, "data": 2, "expert": 8},
     ["expert=8 must equal tensor×data = 4"]),
    ({**MOE, "strategy": S.EP, "tensor": 1, "gpus_available": 16},
     ["expert parallel size 16 exceeds the 8 experts"]),
    # Hard TP constraints.
    ({"strategy": S.HYBRID, "tensor": 8, "gpus_per_node": 4}, ["exceeds 4 GPUs per node"]),
    ({"strategy": S.HYBRID, "tensor": 3, "params_b": 3}, ["tensor=3 is not a power of two"]),
    ({"strategy": S.TP, "tensor": 8, "shape": ModelShape(28, 28, 4, 128)},
     ["tensor=8 does not divide the 28 attention heads", "1, 2, 4"]),
    ({"strategy": S.HYBRID, "pipeline": 40, "shape": ModelShape(32, 32, 8, 128)},
     ["pipeline=40 exceeds the model's 32 layers"]),
    # More GPUs than available.
    ({"strategy": S.HYBRID, "tensor": 4, "pipeline": 2, "gpus_available": 4},
     ["needs 8 GPUs but only 4 are available"]),
    # Memory: explicit layouts that do not fit, with fixes.
    ({"params_b": 70, "strategy": S.TP, "tensor": 1},
     ["TP1 does not fit", "use 2 GPUs", "quantize to fp8 (fits as TP1)"]),
    ({"params_b": 8, "strategy": S.TP, "tensor": 1, "gpu_memory_gib": 24,
      "max_model_len": 1_000_000}, ["lower max model len to", "fits as TP1"]),
    ({"params_b": 8, "strategy": S.TP, "tensor": 1, "gpu_memory_gib": 24,
      "max_model_len": 60_000}, ["use an fp8 KV cache"]),
    # Impossible: 400B dense on 2 × 24 GiB.
    ({"params_b": 400, "gpu_memory_gib": 24, "gpus_available": 2},
     ["400B bf16 Dense model", "does not fit on 2 GPU(s) × 24 GiB", "Fix: use 40 GPUs",
      "quantize to int4 and use 16 GPUs as TP8×PP2"]),
    # KV-bound: quantizing weights would not help, so it is not suggested.
    ({"params_b": 8, "strategy": S.TP, "tensor": 1, "gpu_memory_gib": 24,
      "max_model_len": 1_000_000}, ["use 8 GPUs of 24 GiB as TP8; or lower max model len"]),
    ({"params_b": 400, "gpu_memory_gib": 24, "gpus_available": 2, "strategy": S.TP},
     ["strategy TP: no layout it allows fits", "Fix:"]),
    ({"params_b": 70, "gpus_available": 1},
     ["does not fit on 1 GPU(s)", "quantize to fp8 (fits as TP1)"]),
    # Bad numbers.
    ({"params_b": 0}, ["params must be a positive number, got 0"]),
    ({"params_b": -5}, ["params must be a positive number"]),
    ({"params_b": float("nan")}, ["params must be a positive number"]),
    ({"gpu_memory_gib": -1}, ["gpu memory must be a positive number"]),
    ({"gpus_per_node": 0}, ["gpus per node must be a positive number"]),
    ({"gpus_available": 0}, ["gpus must be a positive number"]),
    ({"max_model_len": 0}, ["max model len must be a positive number"]),
    ({"gpu_memory_utilization": 1.5}, ["gpu memory utilization must be in (0, 1]"]),
    ({"strategy": S.HYBRID, "tensor": 0}, ["tensor must be a positive number"]),
    ({"architecture": Architecture.MOE}, ["a MoE model needs experts ≥ 2"]),
    ({"experts": 8}, ["experts apply only to MoE models"]),
    ({"shape": ModelShape(32, 32, 5, 128)}, ["must be a multiple of kv heads"]),
    ({"shape": ModelShape(0, 32, 8, 128)}, ["layers must be a positive number"]),
]  # fmt: skip


@pytest.mark.parametrize(("kw", "phrases"), ERROR_CASES)
def test_errors_name_the_problem(kw: dict[str, Any], phrases: list[str]) -> None:
    p = plan(req(**kw))
    assert not p.ok
    assert any(all(ph in e for ph in phrases) for e in p.errors), p.errors
    assert p.to_dict()["ok"] is False


def test_fp8_kv_cache_halves_kv_and_is_used_when_asked() -> None:
    auto = plan(req(params_b=8))
    fp8 = plan(req(params_b=8, kv_cache_dtype=KVCacheDType.FP8))
    assert fp8.memory.kv_bytes_per_token * 2 == auto.memory.kv_bytes_per_token
    assert fp8.memory.max_sequences >= 2 * auto.memory.max_sequences


def test_quantized_request_suggests_no_quantization() -> None:
    p = plan(req(params_b=400, dtype=WeightDType.INT4, gpu_memory_gib=24, gpus_available=2))
    assert not p.ok
    assert "quantize" not in p.errors[0]
    assert "use " in p.errors[0]


PD_OK = PDSide(model="m", dtype="bfloat16", block_size=16, tensor=2)


@pytest.mark.parametrize(
    ("prefill", "decode", "connector", "phrase"),
    [
        (PD_OK, PD_OK, "NixlConnector", None),
        (PD_OK, PDSide("m", "bfloat16", 16, 4), "NixlConnector", None),
        (PDSide("m", "bfloat16", 16, 4), PD_OK, "NixlConnector", "prefill TP4 > decode TP2"),
        (PDSide("m", "bfloat16", 16, 4), PD_OK, "P2pNcclConnector", None),
        (PDSide("other", "bfloat16", 16, 2), PD_OK, "NixlConnector", "same model"),
        (PDSide("m", "float16", 16, 2), PD_OK, "NixlConnector", "same dtype"),
        (PDSide("m", "bfloat16", 32, 2), PD_OK, "NixlConnector", "same block size"),
        (PDSide("m", "bfloat16", 16, 2, "fp8"), PD_OK, "NixlConnector", "same kv cache dtype"),
    ],
)
def test_pd_compatibility(
    prefill: PDSide, decode: PDSide, connector: str, phrase: str | None
) -> None:
    errors = pd_compatibility_errors(prefill, decode, connector)
    if phrase is None:
        assert errors == []
    else:
        assert len(errors) == 1
        assert phrase in errors[0]
