"""The embeddable control plane under the seed documents' names.

``from control_plane import ControlPlaneManager, ExecutionInstance, RequestMetadata, ...`` —
the seeds' ``from vllm.control_plane import ...`` and ``from sage.llm import ...`` become this
one import (those packages belong to other projects). ``control_plane.types`` holds the value
types, ``control_plane.strategies`` the scheduling policies.

The manager drives the router's own pipeline (``sagellm_router``): the same admission queue,
scheduling policies, routing strategies, PD orchestration and retries as the HTTP router.
"""

from control_plane.client import (
    Chunk,
    ClientError,
    Completion,
    Embeddings,
    UnifiedInferenceClient,
    Usage,
)
from control_plane.manager import ControlPlaneManager, RequestFailed
from control_plane.strategies import (
    AdaptivePolicy,
    CostOptimizedPolicy,
    FIFOPolicy,
    HybridSchedulingPolicy,
    PriorityPolicy,
    SLOAwarePolicy,
)
from control_plane.types import (
    DecodingConfig,
    ExecutionInstance,
    ExecutionInstanceType,
    InstanceMetrics,
    ParallelismConfig,
    ParallelismType,
    PDSeparationConfig,
    PerformanceMetrics,
    PrefillingConfig,
    RequestMetadata,
    RequestPriority,
    RequestStatus,
    SamplingParams,
)

__all__ = [
    "AdaptivePolicy",
    "Chunk",
    "ClientError",
    "Completion",
    "ControlPlaneManager",
    "CostOptimizedPolicy",
    "DecodingConfig",
    "Embeddings",
    "ExecutionInstance",
    "ExecutionInstanceType",
    "FIFOPolicy",
    "HybridSchedulingPolicy",
    "InstanceMetrics",
    "PDSeparationConfig",
    "ParallelismConfig",
    "ParallelismType",
    "PerformanceMetrics",
    "PrefillingConfig",
    "PriorityPolicy",
    "RequestFailed",
    "RequestMetadata",
    "RequestPriority",
    "RequestStatus",
    "SLOAwarePolicy",
    "SamplingParams",
    "UnifiedInferenceClient",
    "Usage",
]
