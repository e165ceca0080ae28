"""Per-pool runtime: the admission queue (scheduling policy) and the PD threshold of one pool.

Built from the pool's scheduling settings (``PoolSnapshot.effective_scheduling``) and router
knobs; rebuilt only when those settings change, so a policy switched at runtime survives
endpoint updates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sagellm_core.api.pool import SchedulingSpec
from sagellm_core.plugins import Plugin
from sagellm_core.scheduling.policies.adaptive import AdaptiveConfig
from sagellm_core.scheduling.registry import PolicySettings, policies_with_plugins
from sagellm_core.scheduling.view import InstanceView
from sagellm_router.admission_queue import AdmissionQueue, QueueConfig, instance_views
from sagellm_router.admission_queue.sources import ViewCache, capacity
from sagellm_router.config import RouterSettings
from sagellm_router.pd.threshold import AutoParams, ThresholdTuner
from sagellm_router.routing.base import Loads
from sagellm_router.stats.engine import EngineStats
from sagellm_router.stats.tracker import Clock, RequestTracker
from sagellm_router.types import Endpoint

log = logging.getLogger(__name__)


@dataclass
class PoolRuntime:
    """What one pool owns beyond its endpoints: its queue and its PD threshold."""

    name: str
    spec: SchedulingSpec
    queue: AdmissionQueue
    tuner: ThresholdTuner

    def status(self) -> dict[str, object]:
        return {**self.queue.snapshot(), "pd_threshold": self.tuner.status()}


@dataclass(frozen=True)
class LoadSources:
    """Where instance views get their numbers: router counts and fresh scrapes."""

    tracker: RequestTracker
    engine_stats: dict[str, EngineStats]
    loads: Loads
    clock: Clock
    stale_after_s: float

    def numbers(self, url: str) -> tuple[float, float, float | None]:
        """``(in_flight, waiting, ttft_s)`` of ``url`` in one lookup (the admission hot path)."""
        stats = self.engine_stats.get(url)
        counters = self.tracker.counters(url)
        if stats is None or self.clock() - stats.at > self.stale_after_s:
            return counters.in_flight, 0.0, counters.ttft_ewma_s
        return counters.in_flight + stats.others(stats.running), stats.waiting, counters.ttft_ewma_s

    def in_flight(self, url: str) -> float:
        """The router's own in-flight count plus other routers' share of the fresh scrape."""
        return self.numbers(url)[0]

    def waiting(self, url: str) -> float:
        return self.numbers(url)[1]

    def ttft_s(self, url: str) -> float | None:
        return self.numbers(url)[2]


def policy_settings(settings: RouterSettings) -> PolicySettings:
    q = settings.queue
    return PolicySettings(
        aging_interval_s=q.aging_interval_s,
        shed_on_slo_miss=q.shed_on_slo_miss,
        adaptive=AdaptiveConfig(min_dwell_s=q.adaptive_min_dwell_s),
    )


def build_runtime(
    name: str,
    spec: SchedulingSpec,
    settings: RouterSettings,
    endpoints: Callable[[], Sequence[Endpoint]],
    sources: LoadSources,
    plugins: Mapping[str, Plugin] | None = None,
) -> PoolRuntime:
    """A fresh queue and tuner for pool ``name``; ``endpoints`` returns its routable ones."""
    cache = ViewCache()
    default_slots = settings.limits.max_in_flight_per_endpoint

    def views() -> tuple[InstanceView, ...]:
        return instance_views(
            endpoints(),
            max_concurrency=default_slots,
            numbers=sources.numbers,
            cost_per_gpu_hour=spec.cost_per_gpu_hour or 0.0,
            pool=name,
            cache=cache,
        )

    def slots() -> list[tuple[str, int, int]]:
        return capacity(endpoints(), max_concurrency=default_slots, numbers=sources.numbers)

    config = QueueConfig.from_spec(spec, policy_settings(settings))
    policies = policies_with_plugins(plugins or {}, config.policies, now=sources.clock())
    queue = AdmissionQueue(
        name, config, views, clock=sources.clock, policies=policies, capacity=slots
    )
    auto = settings.pd.auto
    tuner = ThresholdTuner(
        threshold=float(spec.pd_threshold_input_tokens),
        auto=spec.pd_threshold_mode == "Auto",
        params=AutoParams(**auto.model_dump()),
    )
    log.info("pool scheduling ready", extra={"pool": name, "policy": config.policy})
    return PoolRuntime(name, spec, queue, tuner)
