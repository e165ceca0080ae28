"""The embeddable API's value types, under the names the sageLLM seed documents use.

These are the *client-side* shapes of ``ControlPlaneManager``; they are distinct from the core
types of the same names (``sagellm_core.api.ExecutionInstance`` is the CRD model,
``sagellm_core.scheduling.RequestMetadata`` the scheduler's view), which the manager builds
from them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from sagellm_core.planner.rules import gpu_count_rule

#: Where an ``ExecutionInstance`` without ``host``/``port`` is looked for: this environment
#: variable (``http://host:port``), else vLLM's own default, ``http://localhost:8000``.
ENGINE_URL_ENV = "SAGELLM_ENGINE_URL"
DEFAULT_ENGINE_URL = "http://localhost:8000"


class RequestPriority(Enum):
    CRITICAL = 0
    HIGH = 1
    NORMAL = 2
    LOW = 3
    BACKGROUND = 4


class RequestStatus(Enum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ParallelismType(Enum):
    """How a model is split over GPUs; ``TP``/``PP``/``DP``/``EP`` are the short names of the
    same members (``ParallelismType.TP is ParallelismType.TENSOR_PARALLEL``)."""

    TENSOR_PARALLEL = "tp"
    PIPELINE_PARALLEL = "pp"
    DATA_PARALLEL = "dp"
    EXPERT_PARALLEL = "ep"
    HYBRID = "hybrid"
    TP = "tp"
    PP = "pp"
    DP = "dp"
    EP = "ep"


class ExecutionInstanceType(Enum):
    """GENERAL and HYBRID serve whole requests; PREFILLING/DECODING form a PD pair."""

    GENERAL = "general"
    PREFILLING = "prefilling"
    DECODING = "decoding"
    HYBRID = "hybrid"


def _new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class RequestMetadata:
    """One request to submit. ``slo_deadline_ms`` is end-to-end from submission; without a
    ``request_id`` a fresh one is made. ``prompt`` is required by ``submit_request`` (the seed
    documents' short forms omit it: they describe scheduling, not text). ``temperature``,
    ``top_p`` and ``max_tokens`` override ``sampling_params`` (a ``SamplingParams`` or dict);
    unset, the engine's defaults apply (``max_tokens``: the manager's ``default_max_tokens``).
    ``parallelism_hint`` prefers instances of that layout where a model's instances differ.
    ``tags`` are kept with the request for the caller; the scheduler does not read them."""

    request_id: str = field(default_factory=_new_id)
    prompt: str | None = None
    user_id: str | None = None
    priority: RequestPriority = RequestPriority.NORMAL
    slo_deadline_ms: float | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    model_name: str | None = None
    parallelism_hint: ParallelismType | None = None
    cost_budget: float | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    sampling_params: Any = None


@dataclass
class PrefillingConfig:
    """Declared shape of a prefill instance (informational; the engine's flags decide)."""

    target_batch_size: int = 64
    tensor_parallel_size: int = 1
    enable_chunked_prefill: bool = True


@dataclass
class DecodingConfig:
    """Declared shape of a decode instance; ``max_parallel_requests`` caps its admission slots."""

    target_latency_ms: float = 50.0
    tensor_parallel_size: int = 1
    max_parallel_requests: int | None = None


@dataclass
class PDSeparationConfig:
    """``routing_policy``: ``threshold`` (fixed) or ``adaptive`` (tuned online from TTFT/ITL)."""

    enabled: bool = True
    routing_policy: str = "threshold"
    prefilling_threshold_input_tokens: int = 800
    prefill_routing: str = "load_balanced"
    decode_routing: str | None = None

    def __post_init__(self) -> None:
        if self.routing_policy not in ("threshold", "adaptive"):
            raise ValueError(
                f"PDSeparationConfig.routing_policy {self.routing_policy!r} must be "
                "'threshold' or 'adaptive'"
            )
        if self.prefilling_threshold_input_tokens < 0:
            raise ValueError("PDSeparationConfig.prefilling_threshold_input_tokens must be >= 0")


EXECUTORS = ("http", "inprocess")


@dataclass
class ExecutionInstance:
    """A vLLM-compatible engine: reachable at ``http://host:port`` (``executor="http"``), or
    started inside this process (``executor="inprocess"``: vLLM's ``AsyncLLM`` for
    ``model_path`` with ``engine_args``, or the ready ``engine`` object given).

    ``prefilling_config``/``decoding_config`` declare the engine's shape (its own flags decide;
    ``decoding_config.max_parallel_requests`` sets the admission slots); ``metadata`` is kept
    for the caller and not read by the manager. ``current_load``, ``active_requests`` and
    ``is_healthy`` are filled in by ``get_instances()``."""

    instance_id: str
    host: str | None = None
    port: int | None = None
    model_name: str | None = None
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    data_parallel_size: int = 1
    expert_parallel_size: int = 1
    instance_type: ExecutionInstanceType = ExecutionInstanceType.GENERAL
    prefilling_config: PrefillingConfig | None = None
    decoding_config: DecodingConfig | None = None
    gpu_count: int = 1
    gpu_memory_gb: float = 0.0
    gpu_utilization: float = 0.0
    is_available: bool = True
    is_healthy: bool = True
    current_load: float = 0.0
    throughput_tokens_per_sec: float = 0.0
    active_requests: int = 0
    max_concurrent_requests: int = 100
    cost_per_gpu_hour: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    task: str = "generate"
    executor: str = "http"
    model_path: str | None = None
    engine_args: dict[str, Any] = field(default_factory=dict)
    engine: Any = None
    sampling_params_factory: Callable[..., Any] | None = None  # default: vllm.SamplingParams

    def __post_init__(self) -> None:
        if not isinstance(self.instance_id, str) or not self.instance_id:
            raise TypeError(
                f"ExecutionInstance needs instance_id='a-name' (got {self.instance_id!r}); "
                "also set host=, port= and model_name= of the engine to register"
            )
        if self.host is None or self.port is None:
            default = urlsplit(os.environ.get(ENGINE_URL_ENV) or DEFAULT_ENGINE_URL)
            self.host = self.host if self.host is not None else default.hostname or "localhost"
            self.port = self.port if self.port is not None else default.port or 8000
        for name in ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size",
                     "expert_parallel_size", "gpu_count"):  # fmt: skip
            if int(getattr(self, name)) < 1:
                raise ValueError(f"ExecutionInstance.{name} must be >= 1")
        if self.executor not in EXECUTORS:
            raise ValueError(
                f"ExecutionInstance.executor {self.executor!r} must be one of {EXECUTORS}"
            )
        if self.executor == "inprocess" and self.engine is None and not self.model_path:
            raise ValueError(
                f"instance {self.instance_id!r}: executor='inprocess' needs model_path "
                "(or a ready engine object)"
            )
        if self.task not in ("generate", "embed"):
            raise ValueError(f"ExecutionInstance.task {self.task!r} must be generate or embed")

    @property
    def url(self) -> str:
        if self.executor == "inprocess":
            return f"inprocess://{self.instance_id}"
        return f"http://{self.host}:{self.port}"

    @property
    def parallelism(self) -> ParallelismType:
        """The instance's layout as one ``ParallelismType``: HYBRID when it combines several."""
        used = [kind for kind, size in (
            (ParallelismType.TENSOR_PARALLEL, self.tensor_parallel_size),
            (ParallelismType.PIPELINE_PARALLEL, self.pipeline_parallel_size),
            (ParallelismType.DATA_PARALLEL, self.data_parallel_size),
            (ParallelismType.EXPERT_PARALLEL, self.expert_parallel_size),
        ) if size > 1]  # fmt: skip
        if len(used) > 1:
            return ParallelismType.HYBRID
        return used[0] if used else ParallelismType.TENSOR_PARALLEL


@dataclass
class PerformanceMetrics:
    total_requests: int = 0
    completed_requests: int = 0
    failed_requests: int = 0
    cancelled_requests: int = 0
    active_requests: int = 0
    queued_requests: int = 0
    avg_latency_ms: float = 0.0
    p50_latency_ms: float = 0.0
    p95_latency_ms: float = 0.0
    p99_latency_ms: float = 0.0
    tokens_per_second: float = 0.0
    requests_per_second: float = 0.0
    avg_gpu_utilization: float = 0.0
    total_gpu_memory_gb: float = 0.0
    used_gpu_memory_gb: float = 0.0
    avg_kv_cache_usage: float | None = None
    cost_per_token: float = 0.0
    slo_violations: int = 0
    slo_compliance_rate: float = 1.0

    @property
    def throughput(self) -> float:
        """Completed requests per second (``requests_per_second``)."""
        return self.requests_per_second

    @property
    def avg_latency(self) -> float:
        """Mean end-to-end latency in milliseconds (``avg_latency_ms``)."""
        return self.avg_latency_ms


@dataclass
class InstanceMetrics:
    instance_id: str
    total_requests_processed: int = 0
    active_requests: int = 0
    failed_requests: int = 0
    avg_latency_ms: float = 0.0
    p95_latency_ms: float = 0.0
    avg_ttft_ms: float | None = None
    current_load: float = 0.0
    kv_cache_usage: float | None = None
    is_healthy: bool = True

    def __getitem__(self, key: str) -> Any:
        """``metrics["active_requests"]``: the seed documents read these like a dict."""
        if key not in {f.name for f in fields(self)}:
            known = ", ".join(f.name for f in fields(self))
            raise KeyError(f"{key!r} is not an instance metric; known: {known}")
        return getattr(self, key)

    def keys(self) -> list[str]:
        return [f.name for f in fields(self)]


@dataclass
class SamplingParams:
    """vLLM's ``SamplingParams`` fields that an OpenAI request carries (same names and
    defaults, ``max_tokens=16`` included). ``process_request`` also takes vLLM's own object or
    a dict with these keys."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int | None = None
    max_tokens: int | None = 16
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0


#: The OpenAI body fields read from a ``SamplingParams`` (ours or vLLM's) or a dict.
SAMPLING_FIELDS = tuple(f.name for f in fields(SamplingParams))


def sampling_body(params: object) -> dict[str, Any]:
    """The OpenAI request fields of ``params`` (None values left out).

    A dict must use only ``SAMPLING_FIELDS`` (TypeError naming the others); an object is read
    attribute by attribute, so vLLM's ``SamplingParams`` works as well as ours.
    """
    if params is None:
        return {}
    if isinstance(params, dict):
        unknown = sorted(set(params) - set(SAMPLING_FIELDS))
        if unknown:
            raise TypeError(f"unknown sampling parameters {unknown}; known: {SAMPLING_FIELDS}")
        values = dict(params)
    else:
        values = {name: getattr(params, name, None) for name in SAMPLING_FIELDS}
    if values.get("top_k") in (0, -1):  # vLLM's "disabled"
        values["top_k"] = None
    return {k: v for k, v in values.items() if v is not None}


STRATEGY_NAMES = {"TP": "tensor", "PP": "pipeline", "DP": "data", "EP": "expert", "HYBRID": ""}


@dataclass
class ParallelismConfig:
    """Which parallelism layouts may be chosen, and the explicit sizes when ``auto_optimize``
    is off. ``recommend(gpu_count)`` applies the seed documents' GPU-count rules (16+ GPUs:
    TP4 PP2 DP=gpus//8; 8-15: TP4 DP=gpus//4; 4-7: TP4; fewer: TP=min(gpus, 2)), keeping only
    the dimensions ``supported_strategies`` allow, with DP (when allowed) replicating over the
    GPUs left; combining dimensions needs ``"Hybrid"`` (else the first of TP, PP, DP stays)."""

    auto_optimize: bool = True
    supported_strategies: list[str] = field(default_factory=lambda: ["TP", "PP", "DP", "Hybrid"])
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    data_parallel_size: int = 1

    def __post_init__(self) -> None:
        unknown = [s for s in self.supported_strategies if s.upper() not in STRATEGY_NAMES]
        if unknown:
            raise ValueError(
                f"unknown parallelism strategies {unknown}; use TP, PP, DP, EP, Hybrid"
            )

    def recommend(self, gpu_count: int) -> dict[str, int]:
        """``{"tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size"}`` for
        ``gpu_count`` GPUs (the explicit sizes when ``auto_optimize`` is False)."""
        if gpu_count < 1:
            raise ValueError(f"gpu_count must be >= 1, got {gpu_count}")
        if not self.auto_optimize:
            return self._sizes(
                self.tensor_parallel_size, self.pipeline_parallel_size, self.data_parallel_size
            )
        rule = gpu_count_rule(gpu_count)
        allowed = {s.upper() for s in self.supported_strategies}
        hybrid = "HYBRID" in allowed
        tp = rule.tensor if "TP" in allowed or hybrid else 1
        pp = rule.pipeline if "PP" in allowed or hybrid else 1
        dp = max(1, gpu_count // (tp * pp)) if "DP" in allowed or hybrid else 1  # the rest
        sizes = [tp, pp, dp]
        if "HYBRID" not in allowed and sum(1 for s in sizes if s > 1) > 1:
            first = next(i for i, s in enumerate(sizes) if s > 1)  # one dimension only
            sizes = [s if i == first else 1 for i, s in enumerate(sizes)]
        return self._sizes(*sizes)

    @staticmethod
    def _sizes(tp: int, pp: int, dp: int) -> dict[str, int]:
        return {"tensor_parallel_size": tp, "pipeline_parallel_size": pp, "data_parallel_size": dp}
