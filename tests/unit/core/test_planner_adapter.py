"""Pool spec → planner request → status RolePlan."""

from __future__ import annotations

from typing import Any

import pytest

from sagellm_core.api.common import Architecture, ParallelismStrategy, Role
from sagellm_core.api.pool import InferencePoolSpec
from sagellm_core.planner import (
    ModelShape,
    WeightDType,
    plan,
    pool_pd_errors,
    request_for_role,
    role_plan,
)


def spec(model: dict[str, Any] | None = None, **over: Any) -> InferencePoolSpec:
    wire: dict[str, Any] = {
        "model": {"name": "m", "source": "org/m", "parameters": 70, **(model or {})},
        "roles": {"general": {}},
        **over,
    }
    return InferencePoolSpec.model_validate(wire)


@pytest.mark.parametrize(
    ("model", "dtype"),
    [({}, WeightDType.BF16), ({"dtype": "auto"}, WeightDType.BF16),
     ({"dtype": "float16"}, WeightDType.FP16), ({"dtype": "float32"}, WeightDType.FP32),
     ({"quantization": "awq"}, WeightDType.AWQ), ({"quantization": "fp8"}, WeightDType.FP8)],
)  # fmt: skip
def test_weight_dtype_from_model(model: dict[str, Any], dtype: WeightDType) -> None:
    assert request_for_role(spec(model), Role.GENERAL).dtype == dtype


def test_partial_shape_is_completed_from_the_table() -> None:
    r = request_for_role(spec({"layers": 60, "kvHeads": 4}), Role.GENERAL)
    assert r.shape == ModelShape(60, 64, 4, 128)
    assert request_for_role(spec(), Role.GENERAL).shape is None


def test_role_parallelism_overrides_pool() -> None:
    s = spec(
        {"architecture": "MoE", "experts": 16},
        parallelism={"strategy": "TP", "tensor": 8},
        roles={"prefill": {"parallelism": {"strategy": "TP", "tensor": 2}}, "decode": {}},
    )
    pre, dec = request_for_role(s, "Prefill"), request_for_role(s, Role.DECODE, 16)
    assert (pre.role, pre.strategy, pre.tensor) == (Role.PREFILL, ParallelismStrategy.TP, 2)
    assert (dec.tensor, dec.gpus_available, dec.architecture) == (8, 16, Architecture.MOE)


def test_role_plan_carries_sizes_memory_and_notes() -> None:
    ok = role_plan(plan(request_for_role(spec(), Role.GENERAL)))
    assert (ok.tensor, ok.pipeline, ok.data, ok.expert, ok.nodes_per_instance) == (4, 1, 1, 1, 1)
    assert ok.weight_gib_per_gpu == pytest.approx(32.6, abs=0.01)
    assert any("size table" in r for r in ok.reasons)
    bad = role_plan(plan(request_for_role(spec({"parameters": 4000}), Role.GENERAL, 2)))
    assert any(r.startswith("error: ") for r in bad.reasons)


@pytest.mark.parametrize(
    ("prefill_tp", "decode_tp", "connector", "ok"),
    [(2, 4, "NixlConnector", True), (4, 2, "NixlConnector", False),
     (4, 2, "P2pNcclConnector", True), (4, 4, None, True)],
)  # fmt: skip
def test_pool_pd_errors_checks_role_plans(
    prefill_tp: int, decode_tp: int, connector: str | None, ok: bool
) -> None:
    roles: dict[str, Any] = {
        "prefill": {"parallelism": {"strategy": "TP", "tensor": prefill_tp}},
        "decode": {"parallelism": {"strategy": "TP", "tensor": decode_tp}},
    }
    if connector is not None:
        roles["kvTransfer"] = {"connector": connector}
    s = spec(roles=roles)
    pre, dec = (plan(request_for_role(s, r)) for r in (Role.PREFILL, Role.DECODE))
    errors = pool_pd_errors(s, pre, dec)
    assert (errors == []) is ok
    if not ok:
        assert f"prefill TP{prefill_tp} > decode TP{decode_tp}" in errors[0]
    assert pool_pd_errors(spec(), pre, dec) == []
