"""The embeddable API's value types (the names the sageLLM seed documents use).

These are the *client-side* shapes of ``ControlPlaneManager``; they are distinct from the core
types of the same names (``sagellm_core.api.ExecutionInstance`` is the CRD model,
``sagellm_core.scheduling.RequestMetadata`` the scheduler's view), which the manager builds
from them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


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
    TENSOR_PARALLEL = "tp"
    PIPELINE_PARALLEL = "pp"
    DATA_PARALLEL = "dp"
    EXPERT_PARALLEL = "ep"
    HYBRID = "hybrid"


class ExecutionInstanceType(Enum):
    """GENERAL and HYBRID serve whole requests; PREFILLING/DECODING form a PD pair."""

    GENERAL = "general"
    PREFILLING = "prefilling"
    DECODING = "decoding"
    HYBRID = "hybrid"


@dataclass
class RequestMetadata:
    """One request to submit. ``slo_deadline_ms`` is end-to-end from submission."""

    request_id: str
    prompt: str | None = None
    user_id: str | None = None
    priority: RequestPriority = RequestPriority.NORMAL
    slo_deadline_ms: float | None = None
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    model_name: str | None = None
    parallelism_hint: ParallelismType | None = None
    cost_budget: float | None = None
    tags: dict[str, Any] = field(default_factory=dict)


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
    ``model_path`` with ``engine_args``, or the ready ``engine`` object given)."""

    instance_id: str
    host: str
    port: int
    model_name: str
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    data_parallel_size: int = 1
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
    avg_gpu_utilization: float | None = None
    total_gpu_memory_gb: float | None = None
    avg_kv_cache_usage: float | None = None
    slo_violations: int = 0
    slo_compliance_rate: float = 1.0


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
