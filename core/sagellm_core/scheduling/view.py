"""What policies see: queued items, per-instance load and pool-wide signals (pure values)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sagellm_core.scheduling.metadata import RequestMetadata


@dataclass(frozen=True, slots=True)
class QueueItem:
    """A request waiting for admission; ``seq`` is its arrival order in the queue."""

    meta: RequestMetadata
    seq: int
    enqueued_s: float

    def waited_s(self, now: float) -> float:
        return max(0.0, now - self.enqueued_s)


@dataclass(frozen=True, slots=True)
class InstanceView:
    """One serving instance as the scheduler sees it.

    ``in_flight`` counts requests running there (the larger of the router's own count and the
    engine's scraped ``running``); ``waiting`` is the engine's own queue; ``ttft_s`` the observed
    time to first token (EWMA) or None; ``tokens_per_s`` the instance's observed or declared
    token throughput, used to price a token.
    """

    name: str
    max_concurrency: int = 256
    in_flight: int = 0
    waiting: int = 0
    ttft_s: float | None = None
    gpus: int = 1
    cost_per_gpu_hour: float = 0.0
    tokens_per_s: float | None = None
    pool: str = ""

    @property
    def free_slots(self) -> int:
        return max(0, self.max_concurrency - self.in_flight)


@dataclass(frozen=True, slots=True)
class Signals:
    """Pool-wide live signals: queue depth, SLO attainment over a window (None: no data yet)
    and utilisation (busy slots / all slots, 0..1)."""

    queue_depth: int = 0
    slo_attainment: float | None = None
    utilisation: float = 0.0


@dataclass(frozen=True, slots=True)
class ClusterView:
    """The instances a request could run on, and the pool's signals."""

    instances: tuple[InstanceView, ...] = ()
    signals: Signals = field(default_factory=Signals)

    def names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.instances)
