"""Typed settings of one simulator process, parsed once from the CLI (or built by tests)."""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from sagellm_sim.jsonflag import json_object
from sagellm_sim.kv_events import KvEventsConfig
from sagellm_sim.profiles import DEFAULT_PROFILE

KV_ROLES = ("kv_producer", "kv_consumer", "kv_both")
VLLM_COMPAT_VERSION = "0.32.0"
RUNNERS = ("auto", "generate", "pooling", "draft")


@dataclass(frozen=True)
class KvTransferConfig:
    """The parts of vLLM's ``--kv-transfer-config`` the simulator uses."""

    kv_connector: str
    kv_role: str
    engine_id: str

    @classmethod
    def parse(cls, text: str) -> KvTransferConfig:
        raw = json_object("--kv-transfer-config", text)
        connector = raw.get("kv_connector")
        if not isinstance(connector, str) or not connector:
            raise ValueError(
                "--kv-transfer-config needs a string 'kv_connector', e.g. NixlConnector"
            )
        role = raw.get("kv_role")
        if role not in KV_ROLES:
            raise ValueError(
                f"--kv-transfer-config 'kv_role' must be one of {KV_ROLES}, got {role!r}"
            )
        engine_id = raw.get("engine_id") or str(uuid.uuid4())
        return cls(connector, role, str(engine_id))


def _positive_number(name: str, value: Any, *, allow_zero: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)


def _optional_count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer or null, got {value!r}")
    return value


@dataclass
class Faults:
    """Injected faults; mutable at run time through ``POST /sim/faults`` (with --sim-admin)."""

    error_rate: float = 0.0  # fraction of generation requests answered with HTTP 500
    crash_after: int | None = None  # exit the process after this many generation requests
    slow_factor: float = 1.0  # multiplies every engine step duration
    stall_after_tokens: int | None = None  # a stream stops sending (connection stays open)
    cut_stream_after_tokens: int | None = None  # a stream's connection is dropped mid-way

    def __post_init__(self) -> None:
        self.update({f.name: getattr(self, f.name) for f in fields(self)})

    def update(self, changes: Mapping[str, Any]) -> None:
        """Validate and apply ``changes``; raises ValueError naming the bad field."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown fault field(s) {unknown}; known: {sorted(known)}")
        checked: dict[str, Any] = {}
        for name, value in changes.items():
            if name == "error_rate":
                rate = _positive_number(name, value)
                if rate > 1:
                    raise ValueError(f"error_rate must be within [0, 1], got {value!r}")
                checked[name] = rate
            elif name == "slow_factor":
                checked[name] = _positive_number(name, value, allow_zero=False)
            else:
                checked[name] = _optional_count(name, value)
        for name, value in checked.items():
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def default_kv_hold_seconds() -> float:
    """vLLM's VLLM_NIXL_ABORT_REQUEST_TIMEOUT (default 480 s)."""
    return float(os.environ.get("VLLM_NIXL_ABORT_REQUEST_TIMEOUT", "480"))


@dataclass(frozen=True)
class SimConfig:
    """Engine arguments (vLLM names) plus simulator-only knobs (``sim_*``)."""

    model: str = "meta-llama/Llama-3.1-8B-Instruct"
    served_model_names: tuple[str, ...] = ()
    host: str = "0.0.0.0"
    port: int = 8000
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    data_parallel_size: int = 1
    max_model_len: int | None = None  # None: the profile model's context length
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    enable_chunked_prefill: bool = True
    gpu_memory_utilization: float = 0.92  # vLLM 0.32's default
    block_size: int = 16
    enable_prefix_caching: bool = True
    num_gpu_blocks_override: int | None = None
    kv_transfer: KvTransferConfig | None = None
    kv_events: KvEventsConfig | None = None  # --kv-events-config
    dtype: str = "auto"
    enable_prompt_tokens_details: bool = False
    enable_expert_parallel: bool = False
    shutdown_timeout: int = 0  # vLLM's --shutdown-timeout: 0 aborts on SIGTERM, N drains N s
    extra_args: tuple[str, ...] = ()
    sim_profile: str = DEFAULT_PROFILE
    sim_time_scale: float = 1.0
    sim_seed: int = 0
    sim_faults: Faults = field(default_factory=Faults)
    sim_startup_delay: float = 0.0
    sim_admin: bool = False
    sim_max_waiting: int | None = None
    sim_kv_hold_seconds: float = field(default_factory=default_kv_hold_seconds)
    sim_advertise_host: str | None = None
    runner: str = "auto"  # vLLM --runner: auto | generate | pooling (| draft)
    convert: str = "auto"  # vLLM --convert: auto | none | embed | classify | ...
    sim_embedding_dim: int | None = None  # None: the profile model's hidden size
    # vLLM's VLLM_SERVER_DEV_MODE=1: serves POST /reset_prefix_cache
    dev_mode: bool = field(default_factory=lambda: os.environ.get("VLLM_SERVER_DEV_MODE") == "1")

    def __post_init__(self) -> None:
        for name in (
            "tensor_parallel_size",
            "pipeline_parallel_size",
            "data_parallel_size",
            "max_model_len",
            "max_num_seqs",
            "max_num_batched_tokens",
            "block_size",
        ):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}"
                )
        if self.shutdown_timeout < 0:
            raise ValueError(f"--shutdown-timeout must be >= 0, got {self.shutdown_timeout}")
        too_small = (
            self.max_model_len is not None and self.max_num_batched_tokens < self.max_model_len
        )
        if not self.enable_chunked_prefill and too_small:
            raise ValueError(
                f"max_num_batched_tokens ({self.max_num_batched_tokens}) is smaller than "
                f"max_model_len ({self.max_model_len}): without chunked prefill a longer prompt "
                "could never be scheduled; increase --max-num-batched-tokens or decrease "
                "--max-model-len"
            )
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError("--gpu-memory-utilization must be within (0, 1]")
        _positive_number("--sim-time-scale", self.sim_time_scale, allow_zero=False)
        _positive_number("--sim-startup-delay", self.sim_startup_delay)
        if self.runner not in RUNNERS:
            raise ValueError(f"--runner must be one of {', '.join(RUNNERS)}, got {self.runner!r}")
        if self.sim_embedding_dim is not None and self.sim_embedding_dim < 1:
            raise ValueError(f"--sim-embedding-dim must be >= 1, got {self.sim_embedding_dim}")

    @property
    def task(self) -> str:
        """``embed`` when vLLM would run the model as an embedding model, else ``generate``."""
        if self.runner == "pooling" or self.convert in ("embed", "embedding"):
            return "embed"
        return "generate"

    @property
    def served_name(self) -> str:
        """The name used in responses and the ``model_name`` metric label."""
        return self.served_model_names[0] if self.served_model_names else self.model

    @property
    def accepted_names(self) -> tuple[str, ...]:
        return self.served_model_names or (self.model,)
