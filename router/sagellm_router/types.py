"""Value types shared by discovery, routing and the proxy: endpoints and pool snapshots."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """The serving role of an endpoint, as in the InferencePool CRD enum."""

    PREFILL = "Prefill"
    DECODE = "Decode"
    GENERAL = "General"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One vLLM-compatible engine the router may send requests to.

    ``url`` is the base URL without a trailing slash (``http://10.0.0.5:8000``); ``instance`` is a
    human-readable name (the ExecutionInstance name in Kubernetes); ``weight`` is a relative
    capacity used by ``weighted_round_robin``.
    """

    url: str
    instance: str
    role: Role = Role.GENERAL
    weight: float = 1.0
    ready: bool = True
    draining: bool = False


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    """The live view of one pool: the model it serves, its default strategy and its endpoints."""

    name: str
    model: str
    routing: str | None = None
    policy: str | None = None
    endpoints: tuple[Endpoint, ...] = ()
    namespace: str | None = None
