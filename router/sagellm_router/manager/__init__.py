"""The embeddable control plane: ``ControlPlaneManager`` and the seed API's value types."""

from sagellm_router.manager.manager import ControlPlaneManager, RequestFailed
from sagellm_router.manager.types import (
    DecodingConfig,
    ExecutionInstance,
    ExecutionInstanceType,
    InstanceMetrics,
    ParallelismType,
    PDSeparationConfig,
    PerformanceMetrics,
    PrefillingConfig,
    RequestMetadata,
    RequestPriority,
    RequestStatus,
)

__all__ = [
    "ControlPlaneManager",
    "DecodingConfig",
    "ExecutionInstance",
    "ExecutionInstanceType",
    "InstanceMetrics",
    "PDSeparationConfig",
    "ParallelismType",
    "PerformanceMetrics",
    "PrefillingConfig",
    "RequestFailed",
    "RequestMetadata",
    "RequestPriority",
    "RequestStatus",
]
