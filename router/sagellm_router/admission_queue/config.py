"""Admission-queue settings, from a pool's ``SchedulingSpec`` plus router-side knobs."""

from __future__ import annotations

from dataclasses import dataclass, field

from sagellm_core.api.pool import SchedulingSpec
from sagellm_core.scheduling.registry import PolicySettings


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """``max_queue_length`` waiting requests at most (beyond: 429); ``queue_timeout_s`` of waiting
    at most (beyond: 503); per-user ``requests_per_minute`` / ``tokens_per_minute`` (None: off);
    SLO attainment over ``slo_window_s``; ``default_service_s`` seeds the Retry-After estimate."""

    policy: str = "fifo"
    max_queue_length: int = 1000
    queue_timeout_s: float = 30.0
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    slo_window_s: float = 60.0
    default_service_s: float = 1.0
    policies: PolicySettings = field(default_factory=PolicySettings)

    def __post_init__(self) -> None:
        if self.max_queue_length < 0:
            raise ValueError(f"max_queue_length must be >= 0, got {self.max_queue_length}")
        if self.queue_timeout_s <= 0:
            raise ValueError(f"queue_timeout_s must be > 0, got {self.queue_timeout_s}")

    @classmethod
    def from_spec(cls, spec: SchedulingSpec, policies: PolicySettings | None = None) -> QueueConfig:
        limits = spec.rate_limits
        return cls(
            policy=str(spec.policy),
            max_queue_length=spec.max_queue_length,
            queue_timeout_s=spec.queue_timeout_ms / 1000.0,
            requests_per_minute=limits.requests_per_minute if limits else None,
            tokens_per_minute=limits.tokens_per_minute if limits else None,
            policies=policies or PolicySettings(),
        )
