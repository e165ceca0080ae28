"""Golden argv tests for ``vllm serve``: every expected argv is spelled out literally."""

from __future__ import annotations

from typing import Any

import pytest

from sagellm_core.api.common import ParallelismSizes, Role
from sagellm_core.api.instance import ExecutionInstanceSpec
from sagellm_core.api.pool import InferencePoolSpec
from sagellm_core.planner import plan, request_for_role, role_plan
from sagellm_core.validation import pool_problems
from sagellm_core.vllm_args import (
    MultiNode,
    ServeConfig,
    kv_transfer_config,
    lws_multi_node,
    serve_args,
    serve_command,
    serve_config_for_instance,
    serve_config_for_pool,
)


def pool(**over: Any) -> InferencePoolSpec:
    wire: dict[str, Any] = {
        "model": {"name": "llama-70b", "source": "meta-llama/Llama-3.1-70B-Instruct",
                  "parameters": 70, "maxModelLen": 8192},
        "engine": {"gpuMemoryGiB": 80, "gpusPerNode": 8},
        "roles": {"general": {"replicas": 2}},
    }  # fmt: skip
    for key, value in over.items():
        wire[key] = {**wire.get(key, {}), **value}
    return InferencePoolSpec.model_validate(wire)


PD_ROLES = {
    "general": None,
    "prefill": {"replicas": 1},
    "decode": {"replicas": 2, "maxParallelRequests": 128},
    "kvTransfer": {"connector": "NixlConnector"},
}

COMMON_TAIL = ["--max-model-len", "8192", "--gpu-memory-utilization", "0.9",
               "--dtype", "bfloat16", "--block-size", "16", "--enable-prefix-caching"]  # fmt: skip
HEAD = ["meta-llama/Llama-3.1-70B-Instruct", "--served-model-name", "llama-70b",
        "--host", "0.0.0.0", "--port", "8000"]  # fmt: skip
TP4 = ["--tensor-parallel-size", "4", "--pipeline-parallel-size", "1"]

GOLDEN = [
    ("general", pool(), Role.GENERAL, ParallelismSizes(tensor=4), None,
     [*HEAD, *TP4, *COMMON_TAIL]),
    ("pd-prefill", pool(roles=PD_ROLES), Role.PREFILL, ParallelismSizes(tensor=4), None,
     [*HEAD, *TP4, *COMMON_TAIL,
      "--kv-transfer-config", '{"kv_connector":"NixlConnector","kv_role":"kv_producer"}']),
    ("pd-decode", pool(roles=PD_ROLES), Role.DECODE, ParallelismSizes(tensor=4), None,
     [*HEAD, *TP4, *COMMON_TAIL, "--max-num-seqs", "128",
      "--kv-transfer-config", '{"kv_connector":"NixlConnector","kv_role":"kv_consumer"}']),
    ("pd-prefill-batch", pool(roles={**PD_ROLES, "prefill": {"replicas": 1,
     "targetBatchSize": 16384, "chunkedPrefill": False}}), Role.PREFILL,
     ParallelismSizes(tensor=4), None,
     [*HEAD, *TP4, *COMMON_TAIL, "--max-num-batched-tokens", "16384",
      "--no-enable-chunked-prefill",
      "--kv-transfer-config", '{"kv_connector":"NixlConnector","kv_role":"kv_producer"}']),
    ("multi-node-leader", pool(), Role.GENERAL, ParallelismSizes(tensor=8, pipeline=2),
     lws_multi_node(2, leader=True),
     [*HEAD, "--tensor-parallel-size", "8", "--pipeline-parallel-size", "2",
      "--nnodes", "2", "--node-rank", "0", "--master-addr", "$(LWS_LEADER_ADDRESS)",
      *COMMON_TAIL]),
    ("multi-node-worker", pool(), Role.GENERAL, ParallelismSizes(tensor=8, pipeline=2),
     lws_multi_node(2, leader=False, master_port=29501),
     [*HEAD, "--tensor-parallel-size", "8", "--pipeline-parallel-size", "2",
      "--nnodes", "2", "--node-rank", "$(LWS_WORKER_INDEX)",
      "--master-addr", "$(LWS_LEADER_ADDRESS)", "--master-port", "29501", "--headless",
      *COMMON_TAIL]),
    ("moe-ep", pool(model={"architecture": "MoE", "experts": 8, "parameters": 47}),
     Role.GENERAL, ParallelismSizes(tensor=4, data=2, expert=8), None,
     [*HEAD, *TP4, "--data-parallel-size", "2", "--enable-expert-parallel", *COMMON_TAIL]),
    ("extra-args-quantized",
     pool(model={"quantization": "fp8", "quantizeOnLoad": True, "revision": "v2"},
          engine={"extraArgs": ["--max-num-batched-tokens", "8192", "--enforce-eager"],
                  "enablePrefixCaching": False, "gpuMemoryUtilization": 0.85}),
     Role.GENERAL, ParallelismSizes(tensor=2), None,
     ["meta-llama/Llama-3.1-70B-Instruct", "--served-model-name", "llama-70b",
      "--revision", "v2", "--host", "0.0.0.0", "--port", "8000",
      "--tensor-parallel-size", "2", "--pipeline-parallel-size", "1",
      "--max-model-len", "8192", "--gpu-memory-utilization", "0.85", "--dtype", "bfloat16",
      "--quantization", "fp8", "--block-size", "16", "--no-enable-prefix-caching",
      "--max-num-batched-tokens", "8192", "--enforce-eager"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "spec", "role", "sizes", "multi_node", "expected"),
    GOLDEN,
    ids=[g[0] for g in GOLDEN],
)
def test_golden_argv(
    name: str,
    spec: InferencePoolSpec,
    role: Role,
    sizes: ParallelismSizes,
    multi_node: MultiNode | None,
    expected: list[str],
) -> None:
    assert serve_args(serve_config_for_pool(spec, role, sizes, multi_node)) == expected


@pytest.mark.parametrize(
    ("role", "connector", "expected"),
    [
        (Role.GENERAL, "NixlConnector", None),
        (Role.PREFILL, None, '{"kv_connector":"NixlConnector","kv_role":"kv_producer"}'),
        (Role.DECODE, "P2pNcclConnector",
         '{"kv_connector":"P2pNcclConnector","kv_role":"kv_consumer"}'),
    ],
)  # fmt: skip
def test_kv_transfer_config_per_role(role: Role, connector: str | None, expected: str) -> None:
    assert kv_transfer_config(role, connector) == expected


@pytest.mark.parametrize(
    ("quant", "on_load", "flag"),
    [("fp8", False, False), ("fp8", True, True), ("awq", False, False), ("gptq", False, False),
     ("int4", False, False), (None, False, False)],
)  # fmt: skip
def test_quantization_flag_only_to_quantize_at_load(
    quant: str | None, on_load: bool, flag: bool
) -> None:
    """A quantized checkpoint declares its method (vLLM reads it; a flag naming another method,
    e.g. fp8 for a compressed-tensors FP8 checkpoint, stops vLLM); only quantize-at-load
    passes --quantization."""
    args = serve_args(ServeConfig("m", "m", 512, quantization=quant, quantize_on_load=on_load))
    assert ("--quantization" in args) is flag
    if flag:
        assert args[args.index("--quantization") + 1] == quant


def _pool_object(model: dict[str, Any]) -> dict[str, Any]:
    spec = {"model": {"name": "m", "source": "s", "parameters": 7, **model},
            "engine": {"gpuMemoryGiB": 80}, "roles": {"general": {"replicas": 1}}}  # fmt: skip
    return {"apiVersion": "sagellm.io/v1alpha1", "kind": "InferencePool",
            "metadata": {"name": "p"}, "spec": spec}  # fmt: skip


@pytest.mark.parametrize("quant", ["awq", "gptq", "int8", "int4", None])
def test_quantize_on_load_is_fp8_only(quant: str | None) -> None:
    model: dict[str, Any] = {"quantizeOnLoad": True}
    if quant:
        model["quantization"] = quant
    problems = pool_problems(_pool_object(model))
    assert any("quantizeOnLoad needs model.quantization: fp8" in p for p in problems), problems
    assert pool_problems(_pool_object({"quantizeOnLoad": True, "quantization": "fp8"})) == []


@pytest.mark.parametrize("value", ["abc", "0", "-3"])
def test_a_bad_max_num_seqs_is_an_invalid_spec(value: str) -> None:
    """It sets the router's slots (status.endpoints[].maxConcurrency): refused, not guessed."""
    pool = _pool_object({})
    pool["spec"]["engine"]["extraArgs"] = ["--max-num-seqs", value]
    assert pool_problems(pool) == [
        f"spec.engine.extraArgs --max-num-seqs {value!r} is not a positive integer"
    ]


def test_explicit_multi_node_leader_and_int_ranks() -> None:
    leader = serve_args(ServeConfig("m", "m", 512, multi_node=MultiNode(3, 0, "10.0.0.1")))
    worker = serve_args(ServeConfig("m", "m", 512, multi_node=MultiNode(3, 2, "10.0.0.1")))
    assert "--headless" not in leader
    assert worker[-1] == "--enable-prefix-caching"
    assert worker[worker.index("--node-rank") + 1] == "2"
    assert "--headless" in worker


def test_serve_command_per_engine_kind() -> None:
    assert serve_command("vLLM") == ["vllm", "serve"]
    assert serve_command("Simulator") == ["sagellm", "sim"]


def test_instance_spec_and_planner_feed_the_builder() -> None:
    spec = pool()
    p = plan(request_for_role(spec, Role.GENERAL))
    assert p.ok
    status = role_plan(p)
    assert (status.tensor, status.pipeline, status.gpus_per_instance) == (4, 1, 4)
    inst = ExecutionInstanceSpec(
        pool="p", role=Role.GENERAL, model=spec.model, engine=spec.engine,
        parallelism=ParallelismSizes(tensor=status.tensor, pipeline=status.pipeline),
    )  # fmt: skip
    assert serve_args(serve_config_for_instance(inst)) == [*HEAD, *TP4, *COMMON_TAIL]
