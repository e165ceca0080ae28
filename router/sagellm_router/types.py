"""Value types shared by discovery, routing and the proxy: endpoints and pool snapshots."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from sagellm_core.api.pool import SchedulingSpec


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
    capacity used by ``weighted_round_robin``. ``max_concurrency`` (None: the router's
    ``limits.max_in_flight_per_endpoint``), ``gpus`` and ``tokens_per_s`` (declared throughput,
    None: unknown) feed the admission queue's slots and cost estimates.
    """

    url: str
    instance: str
    role: Role = Role.GENERAL
    weight: float = 1.0
    ready: bool = True
    draining: bool = False
    max_concurrency: int | None = None
    gpus: int | None = None
    tokens_per_s: float | None = None


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    """The live view of one pool: the model it serves, its default strategy, its endpoints and
    its scheduling settings (the CRD's ``spec.scheduling``: policy, PD threshold, SLO defaults,
    queue limits, rate limits, cost). ``task`` is the model's task (the CRD's
    ``spec.model.task``): ``generate`` pools take completions and chat, ``embed`` pools
    embeddings. ``created`` (the object's creationTimestamp, or a static pool's ``created_at``)
    and ``order`` (a static pool's position in the file) decide who owns a model name claimed by
    several pools (``sagellm_core.ownership``)."""

    name: str
    model: str
    routing: str | None = None
    policy: str | None = None
    endpoints: tuple[Endpoint, ...] = ()
    namespace: str | None = None
    scheduling: SchedulingSpec = field(default_factory=SchedulingSpec)
    task: str = "generate"
    created: str | None = None
    order: int = 0
    scale_from_zero: bool = False
    """Autoscaling may start this pool from zero replicas: requests wait for it (bounded by the
    queue timeout) instead of a 503 while no endpoint exists."""

    def effective_scheduling(self) -> SchedulingSpec:
        """``scheduling`` with the pool-level ``policy`` (when set) taking precedence."""
        if self.policy and self.policy != self.scheduling.policy:
            return self.scheduling.model_copy(update={"policy": self.policy})
        return self.scheduling
