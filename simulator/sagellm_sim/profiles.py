"""Performance profiles: a model, a GPU and a roofline cost model for one engine step.

Every constant here is documented with its source in docs/simulator.md ("Calibration").
A step costs ``overhead + max(memory_time, compute_time) + tensor_parallel_comm``:

* memory_time  = (weights per GPU + KV bytes read per GPU) / (HBM bandwidth x efficiency)
* compute_time = (tokens x 2 x params / TP + attention FLOPs) / (peak BF16 FLOP/s x MFU)
* TP comm      = 2 all-reduces per layer: a fixed latency each plus the activation bytes over NVLink

Pipeline parallelism does not shorten a step (stages run one after another); it adds one
point-to-point hop per stage boundary and divides weights and KV across stages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GIB = 1024**3


@dataclass(frozen=True)
class ModelSpec:
    """Architecture numbers of a dense decoder-only transformer (from its config.json)."""

    name: str
    params_b: float  # billions of parameters
    layers: int
    hidden: int
    kv_heads: int
    head_dim: int
    attention_heads: int
    max_position: int = 131072  # max_position_embeddings: vLLM's default --max-model-len
    dtype_bytes: int = 2  # bf16


@dataclass(frozen=True)
class GpuSpec:
    """Datasheet numbers of one GPU (dense, no sparsity)."""

    name: str
    memory_gib: float
    hbm_bytes_per_s: float
    bf16_flops: float
    nvlink_bytes_per_s: float


@dataclass(frozen=True)
class Efficiency:
    """Achieved fractions of peak and fixed costs (assumptions, see docs/simulator.md)."""

    bandwidth: float = 0.70
    mfu: float = 0.50
    step_overhead_s: float = 0.0008
    allreduce_latency_s: float = 0.000012
    pp_hop_s: float = 0.0002
    activation_reserve_gib: float = 2.0
    nccl_reserve_gib: float = 0.5
    kv_transfer_bytes_per_s: float = 25e9  # NIXL over 200 Gb/s RDMA, ~100% of line rate
    kv_transfer_latency_s: float = 0.002


@dataclass(frozen=True)
class Profile:
    """A named (model, GPU, efficiency) triple."""

    name: str
    model: ModelSpec
    gpu: GpuSpec
    eff: Efficiency = Efficiency()


@dataclass(frozen=True)
class Parallelism:
    """Parallelism of one engine (one DP replica)."""

    tp: int = 1
    pp: int = 1

    def __post_init__(self) -> None:
        if self.tp < 1 or self.pp < 1:
            raise ValueError(f"tensor/pipeline parallel sizes must be >= 1, got {self}")


H100_SXM = GpuSpec("H100-SXM-80GB", 80.0, 3.35e12, 989e12, 450e9)
A100_SXM = GpuSpec("A100-SXM-80GB", 80.0, 2.039e12, 312e12, 300e9)
LLAMA_31_8B = ModelSpec("meta-llama/Llama-3.1-8B-Instruct", 8.03, 32, 4096, 8, 128, 32)
LLAMA_31_70B = ModelSpec("meta-llama/Llama-3.1-70B-Instruct", 70.6, 80, 8192, 8, 128, 64)
TINY_MODEL = ModelSpec("tiny-llama-test", 0.5, 8, 1024, 4, 64, 16, max_position=4096)
TINY_GPU = GpuSpec("test-gpu-1GB", 2.0, 0.5e12, 50e12, 100e9)


def builtin_profiles() -> dict[str, Profile]:
    """The profiles selectable with ``--sim-profile`` (a fresh dict on each call)."""
    return {
        "llama-3.1-8b-h100": Profile("llama-3.1-8b-h100", LLAMA_31_8B, H100_SXM),
        "llama-3.1-8b-a100": Profile("llama-3.1-8b-a100", LLAMA_31_8B, A100_SXM),
        "llama-3.1-70b-h100": Profile("llama-3.1-70b-h100", LLAMA_31_70B, H100_SXM),
        "tiny": Profile("tiny", TINY_MODEL, TINY_GPU, Efficiency(activation_reserve_gib=0.25)),
    }


DEFAULT_PROFILE = "llama-3.1-8b-h100"


def get_profile(name: str) -> Profile:
    profiles = builtin_profiles()
    if name not in profiles:
        raise ValueError(f"unknown --sim-profile {name!r}; choose one of {sorted(profiles)}")
    return profiles[name]


@dataclass(frozen=True)
class StepWork:
    """What one engine step computes (aggregated over the batch)."""

    prefill_tokens: int = 0  # new prompt tokens computed this step
    prefill_attention: int = 0  # sum over prefill chunks of chunk_len x context_len
    decode_seqs: int = 0  # sequences generating one token
    decode_context: int = 0  # sum of context lengths of the decoding sequences


class CostModel:
    """Step durations and KV capacity of one engine with a given profile and parallelism."""

    def __init__(self, profile: Profile, par: Parallelism) -> None:
        self.profile = profile
        self.par = par
        m, g = profile.model, profile.gpu
        self._weights_per_gpu = m.params_b * 1e9 * m.dtype_bytes / (par.tp * par.pp)
        self._flops_per_token = 2 * m.params_b * 1e9 / par.tp
        self._attn_flops = 4 * m.layers * m.hidden / par.tp  # per (query token x context token)
        kv_heads_per_gpu = max(1, m.kv_heads // par.tp)
        self.kv_bytes_per_token_per_gpu = (
            2 * (m.layers / par.pp) * kv_heads_per_gpu * m.head_dim * m.dtype_bytes
        )
        # PP stages run one after another, so a step reads every stage's weights and KV.
        self._step_weight_bytes = self._weights_per_gpu * par.pp
        self._step_kv_bytes_per_token = self.kv_bytes_per_token_per_gpu * par.pp
        self.kv_bytes_per_token_total = 2 * m.layers * m.kv_heads * m.head_dim * m.dtype_bytes
        self._bw = g.hbm_bytes_per_s * profile.eff.bandwidth
        self._flops = g.bf16_flops * profile.eff.mfu

    def num_gpu_blocks(self, gpu_memory_utilization: float, block_size: int) -> int:
        """KV blocks that fit next to the weights (as vLLM profiles the memory left for KV)."""
        eff = self.profile.eff
        reserve = eff.activation_reserve_gib + (eff.nccl_reserve_gib if self.par.tp > 1 else 0.0)
        budget = gpu_memory_utilization * self.profile.gpu.memory_gib * GIB
        free = budget - self._weights_per_gpu - reserve * GIB
        blocks = math.floor(free / (self.kv_bytes_per_token_per_gpu * block_size))
        if blocks <= 0:
            raise ValueError(
                f"model {self.profile.model.name} does not fit: weights need "
                f"{self._weights_per_gpu / GIB:.1f} GiB per GPU but only {budget / GIB:.1f} GiB "
                f"are usable at gpu_memory_utilization={gpu_memory_utilization}; raise "
                "--tensor-parallel-size or --pipeline-parallel-size"
            )
        return blocks

    def step_seconds(self, work: StepWork) -> float:
        """Simulated duration of one forward pass (seconds of GPU time)."""
        tokens = work.prefill_tokens + work.decode_seqs
        if tokens == 0:
            return 0.0
        eff, m = self.profile.eff, self.profile.model
        kv_read = work.decode_context * self._step_kv_bytes_per_token
        memory = (self._step_weight_bytes + kv_read) / self._bw
        attn = (work.prefill_attention + work.decode_context) * self._attn_flops
        compute = (tokens * self._flops_per_token + attn) / self._flops
        comm = 0.0
        if self.par.tp > 1:
            ring = 2 * (self.par.tp - 1) / self.par.tp
            act_bytes = tokens * m.hidden * m.dtype_bytes * ring
            per_allreduce = (
                eff.allreduce_latency_s + act_bytes / self.profile.gpu.nvlink_bytes_per_s
            )
            comm = 2 * m.layers * per_allreduce
        hops = (self.par.pp - 1) * eff.pp_hop_s
        return eff.step_overhead_s + max(memory, compute) + comm + hops

    def kv_transfer_seconds(self, tokens: int) -> float:
        """Time to pull the KV of ``tokens`` prompt tokens from a prefill instance."""
        eff = self.profile.eff
        return eff.kv_transfer_latency_s + tokens * self.kv_bytes_per_token_total / (
            eff.kv_transfer_bytes_per_s
        )
