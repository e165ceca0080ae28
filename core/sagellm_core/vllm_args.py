"""The ``vllm serve`` argv for one instance of a pool: pure, no I/O.

:func:`serve_args` builds the arguments that follow the command (``vllm serve`` for vLLM,
``sagellm sim`` for the simulator, see :func:`serve_command`) from a :class:`ServeConfig`;
:func:`serve_config_for_pool` and :func:`serve_config_for_instance` derive that config from the
API models. Multi-node instances use vLLM's multiprocessing launcher (``--nnodes``,
``--node-rank``, ``--master-addr``; workers add ``--headless``), see docs/planner.md.
:func:`instance_argvs` gives both argvs of one instance (the leader's, and the workers' when it
spans nodes): the one place the operator gets engine argv from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Final, Protocol

from sagellm_core.api.common import EngineKind, KVConnector, Role, RoutingStrategy
from sagellm_core.api.instance import ExecutionInstanceSpec
from sagellm_core.api.pool import EngineSpec, InferencePoolSpec, ModelSpec

DEFAULT_PORT: Final = 8000
LWS_LEADER_ADDRESS: Final = "$(LWS_LEADER_ADDRESS)"
LWS_WORKER_INDEX: Final = "$(LWS_WORKER_INDEX)"
KV_EVENTS_PORT: Final = 5557
"""Where engines of ``kv_aware`` pools publish KV-cache events (ZMQ PUB, vLLM's default port)."""
KV_EVENTS_REPLAY_PORT: Final = 5558
"""Their replay socket (ZMQ ROUTER): a subscriber that sees a sequence gap catches up here."""
KV_ROLES: Final = {Role.PREFILL: "kv_producer", Role.DECODE: "kv_consumer"}
ON_LOAD_QUANTIZATIONS: Final = frozenset({"fp8"})
"""Quantizations vLLM applies to an unquantized checkpoint at load (``--quantization``). A
pre-quantized checkpoint (FP8 as compressed-tensors, fbgemm_fp8 or fp8; AWQ; GPTQ; int8/int4)
carries its ``quantization_config``, which vLLM reads; passing a flag that names a different
method makes vLLM refuse to start, so none is passed."""


@dataclass(frozen=True)
class MultiNode:
    """Where this process sits in a multi-node instance (values may be ``$(ENV)`` references,
    which Kubernetes expands in container args)."""

    nnodes: int
    node_rank: int | str
    master_addr: str
    master_port: int | None = None

    @property
    def is_leader(self) -> bool:
        return self.node_rank in (0, "0")


@dataclass(frozen=True)
class ServeConfig:
    """Everything the argv depends on."""

    model_source: str
    served_name: str
    max_model_len: int
    dtype: str = "auto"
    quantization: str | None = None
    quantize_on_load: bool = False
    revision: str | None = None
    gpu_memory_utilization: float = 0.9
    tensor: int = 1
    pipeline: int = 1
    data: int = 1
    expert_parallel: bool = False
    role: Role = Role.GENERAL
    connector: str | None = None
    block_size: int | None = None
    enable_prefix_caching: bool = True
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    chunked_prefill: bool = True
    kv_events: bool = False
    multi_node: MultiNode | None = None
    extra_args: tuple[str, ...] = ()
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT


class Sizes(Protocol):
    """Anything carrying resolved sizes: a ``RolePlan``, ``ParallelismSizes`` or similar."""

    @property
    def tensor(self) -> int: ...
    @property
    def pipeline(self) -> int: ...
    @property
    def data(self) -> int: ...
    @property
    def expert(self) -> int: ...


def serve_command(kind: EngineKind | str) -> list[str]:
    """The command the argv follows: real vLLM or the simulator (same flags)."""
    return ["sagellm", "sim"] if EngineKind(kind) == EngineKind.SIMULATOR else ["vllm", "serve"]


def kv_transfer_config(role: Role | str, connector: str | None) -> str | None:
    """``--kv-transfer-config`` JSON: Prefill produces KV, Decode consumes it, General has none."""
    kv_role = KV_ROLES.get(Role(role))
    if kv_role is None:
        return None
    name = connector or KVConnector.NIXL.value
    return json.dumps({"kv_connector": name, "kv_role": kv_role}, separators=(",", ":"))


def publishes_kv_events(spec: InferencePoolSpec) -> bool:
    """The pool's engines publish KV-cache events: its router strategy reads them."""
    return spec.scheduling.routing == RoutingStrategy.KV_AWARE


def kv_events_config() -> str:
    """``--kv-events-config`` JSON: publish KV-cache events on the pod's fixed ports."""
    config = {
        "enable_kv_cache_events": True,
        "publisher": "zmq",
        "endpoint": f"tcp://*:{KV_EVENTS_PORT}",
        "replay_endpoint": f"tcp://*:{KV_EVENTS_REPLAY_PORT}",
    }
    return json.dumps(config, separators=(",", ":"))


def _given(flag: str, value: object | None) -> list[str]:
    """``[flag, value]`` when the value is set, else nothing."""
    return [] if value is None else [flag, str(value)]


def _parallel_args(cfg: ServeConfig) -> list[str]:
    args = [
        "--tensor-parallel-size", str(cfg.tensor),
        "--pipeline-parallel-size", str(cfg.pipeline),
    ]  # fmt: skip
    if cfg.data > 1:
        args += ["--data-parallel-size", str(cfg.data)]
    if cfg.expert_parallel:
        args.append("--enable-expert-parallel")
    mn = cfg.multi_node
    if mn is not None:
        args += ["--nnodes", str(mn.nnodes), "--node-rank", str(mn.node_rank)]
        args += ["--master-addr", mn.master_addr, *_given("--master-port", mn.master_port)]
        if not mn.is_leader:
            args.append("--headless")
    return args


def _model_args(cfg: ServeConfig) -> list[str]:
    args = ["--max-model-len", str(cfg.max_model_len)]
    args += ["--gpu-memory-utilization", f"{cfg.gpu_memory_utilization:g}"]
    args += ["--dtype", cfg.dtype]
    if cfg.quantize_on_load and cfg.quantization in ON_LOAD_QUANTIZATIONS:
        args += ["--quantization", cfg.quantization]
    args += _given("--block-size", cfg.block_size)
    args.append(
        "--enable-prefix-caching" if cfg.enable_prefix_caching else "--no-enable-prefix-caching"
    )
    args += _given("--max-num-seqs", cfg.max_num_seqs)
    args += _given("--max-num-batched-tokens", cfg.max_num_batched_tokens)
    if not cfg.chunked_prefill:
        args.append("--no-enable-chunked-prefill")
    return args


def serve_args(cfg: ServeConfig) -> list[str]:
    """The argv after ``vllm serve``: model first, extra args last (so they can override)."""
    args = [cfg.model_source, "--served-model-name", cfg.served_name]
    args += _given("--revision", cfg.revision)
    args += ["--host", cfg.host, "--port", str(cfg.port)]
    args += _parallel_args(cfg) + _model_args(cfg)
    kv = kv_transfer_config(cfg.role, cfg.connector)
    if kv is not None:
        args += ["--kv-transfer-config", kv]
    if cfg.kv_events:
        args += ["--kv-events-config", kv_events_config()]
    return args + list(cfg.extra_args)


def _config(
    model: ModelSpec,
    engine: EngineSpec,
    role: Role | str,
    sizes: Sizes,
    connector: str | None,
    multi_node: MultiNode | None,
) -> ServeConfig:
    return ServeConfig(
        model_source=model.source,
        served_name=model.name,
        max_model_len=model.max_model_len,
        dtype=model.dtype,
        quantization=model.quantization,
        quantize_on_load=model.quantize_on_load,
        revision=model.revision,
        gpu_memory_utilization=engine.gpu_memory_utilization,
        tensor=sizes.tensor,
        pipeline=sizes.pipeline,
        data=sizes.data,
        expert_parallel=sizes.expert > 1,
        role=Role(role),
        connector=connector,
        block_size=engine.block_size,
        enable_prefix_caching=engine.enable_prefix_caching,
        multi_node=multi_node,
        extra_args=tuple(engine.extra_args),
    )


def serve_config_for_pool(
    spec: InferencePoolSpec,
    role: Role | str,
    sizes: Sizes,
    multi_node: MultiNode | None = None,
) -> ServeConfig:
    """Config for one instance of ``role`` in a pool, with the planner's sizes."""
    connector = spec.roles.kv_transfer.connector if spec.roles.kv_transfer else None
    cfg = _config(spec.model, spec.engine, role, sizes, connector, multi_node)
    cfg = replace(cfg, kv_events=publishes_kv_events(spec))
    decode, prefill = spec.roles.decode, spec.roles.prefill
    if Role(role) == Role.DECODE and decode is not None and decode.max_parallel_requests:
        return replace(cfg, max_num_seqs=decode.max_parallel_requests)
    if Role(role) == Role.PREFILL and prefill is not None:
        return replace(cfg, max_num_batched_tokens=prefill.target_batch_size,
                       chunked_prefill=prefill.chunked_prefill)  # fmt: skip
    return cfg


def serve_config_for_instance(
    spec: ExecutionInstanceSpec,
    connector: str | None = None,
    multi_node: MultiNode | None = None,
) -> ServeConfig:
    """Config from an ExecutionInstance spec (which carries model, engine, role and sizes)."""
    return _config(spec.model, spec.engine, spec.role, spec.parallelism, connector, multi_node)


def lws_multi_node(nnodes: int, leader: bool, master_port: int | None = None) -> MultiNode:
    """Multi-node placement inside a LeaderWorkerSet: ranks and address from LWS env vars."""
    rank: int | str = 0 if leader else LWS_WORKER_INDEX
    return MultiNode(nnodes, rank, LWS_LEADER_ADDRESS, master_port)


def instance_argvs(
    spec: InferencePoolSpec, role: Role | str, sizes: Sizes, nodes: int, port: int = DEFAULT_PORT
) -> tuple[list[str], list[str] | None]:
    """The argv of one instance of ``role``: the serving process's (a LeaderWorkerSet leader's
    when ``nodes > 1``), and the workers' (None on one node)."""
    if nodes <= 1:
        return serve_args(replace(serve_config_for_pool(spec, role, sizes), port=port)), None
    leader, worker = (
        serve_args(replace(serve_config_for_pool(spec, role, sizes, m), port=port))
        for m in (lws_multi_node(nodes, leader=True), lws_multi_node(nodes, leader=False))
    )
    return leader, worker
