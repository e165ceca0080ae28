"""sageLLM router: OpenAI-compatible scheduling and routing in front of vLLM engines.

The embeddable API is importable from here (loaded on first use, so ``sagellm router`` and
config parsing do not pay for it)::

    from sagellm_router import ControlPlaneManager, ExecutionInstance, RequestMetadata
    from sagellm_router import UnifiedInferenceClient, ClientError
"""

from __future__ import annotations

from typing import Any

_MANAGER_EXPORTS = (
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
)
_CLIENT_EXPORTS = ("ClientError", "UnifiedInferenceClient")
__all__ = [*_MANAGER_EXPORTS, *_CLIENT_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _MANAGER_EXPORTS:
        from sagellm_router import manager

        return getattr(manager, name)
    if name in _CLIENT_EXPORTS:
        from sagellm_router import client

        return getattr(client, name)
    raise AttributeError(f"module 'sagellm_router' has no attribute {name!r}")
