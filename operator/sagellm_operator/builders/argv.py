"""The engine argv of one instance (``vllm serve`` flags; the simulator accepts the same).

Inputs: the pool spec, the role and the role's plan. Output: the argument list after
``vllm serve`` — model first, then parallelism, limits, PD transfer config and extra args.
"""

from __future__ import annotations

import json

from sagellm_core.api import InferencePoolSpec, Role
from sagellm_core.planner import Plan

_KV_ROLE = {Role.PREFILL: "kv_producer", Role.DECODE: "kv_consumer"}


def engine_args(spec: InferencePoolSpec, role: Role, plan: Plan, port: int) -> list[str]:
    m, e, lay = spec.model, spec.engine, plan.layout
    args = [m.source, "--served-model-name", m.name, "--port", str(port)]
    if m.revision:
        args += ["--revision", m.revision]
    args += [
        "--tensor-parallel-size",
        str(lay.tensor),
        "--pipeline-parallel-size",
        str(lay.pipeline),
    ]
    if lay.data > 1:
        args += ["--data-parallel-size", str(lay.data)]
    if lay.expert_parallel:
        args.append("--enable-expert-parallel")
    args += ["--max-model-len", str(m.max_model_len), "--dtype", m.dtype]
    if m.quantization:
        args += ["--quantization", m.quantization]
    args += ["--gpu-memory-utilization", str(e.gpu_memory_utilization)]
    args += ["--block-size", str(e.block_size)]
    args.append(
        "--enable-prefix-caching" if e.enable_prefix_caching else "--no-enable-prefix-caching"
    )
    if role in _KV_ROLE:
        connector = spec.roles.kv_transfer.connector if spec.roles.kv_transfer else "NixlConnector"
        config = {"kv_connector": str(connector), "kv_role": "kv_both"
                  if connector == "NixlConnector" else _KV_ROLE[role]}  # fmt: skip
        args += ["--kv-transfer-config", json.dumps(config, separators=(",", ":"))]
    if role is Role.PREFILL and spec.roles.prefill and not spec.roles.prefill.chunked_prefill:
        args.append("--no-enable-chunked-prefill")
    if role is Role.DECODE and spec.roles.decode and spec.roles.decode.max_parallel_requests:
        args += ["--max-num-seqs", str(spec.roles.decode.max_parallel_requests)]
    return [*args, *e.extra_args]
