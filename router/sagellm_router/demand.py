"""Demand signals per pool and role, exported for autoscalers (the operator's, or HPA/KEDA).

Read at scrape time from what the router already tracks, so they cost nothing per request
except the arrivals counter. Series (``pool`` is ``namespace/name``):

- ``sagellm_router_demand_queued_requests{pool}``: requests waiting in the pool's admission
  queue; every serving role is needed for them (a held request at zero replicas is one).
- ``sagellm_router_demand_held_requests{pool}``: of those, the ones waiting while the pool has
  no routable serving endpoint (scale from zero, or every engine still starting).
- ``sagellm_router_demand_in_flight_requests{pool,role}``: requests (PD: legs) this router has
  sent to the role's engines and not finished.
- ``sagellm_router_demand_arrivals_total{pool}``: requests that reached the pool (rate() it).
- ``sagellm_router_demand_engine_running_requests{pool,role}``,
  ``sagellm_router_demand_engine_waiting_requests{pool,role}``: the engines' own counts at the
  last scrape (all routers' requests; do not sum over router replicas).
- ``sagellm_router_demand_kv_usage_ratio{pool,role}``: mean KV-cache usage of the role's engines.
- ``sagellm_router_demand_ttft_seconds{pool,role}``: mean of the per-endpoint TTFT EWMA seen by
  this router (the prefill role: the prefill leg's time to first byte).
- ``sagellm_router_draining_endpoint{pool,instance}``: 1 for each instance this router holds as
  draining (it picks it for no new request); the operator ends a drain's discovery wait once
  every router replica lists the instance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sagellm_core.demand import DRAINING, PREFIX
from sagellm_router.stats.engine import EngineStats
from sagellm_router.stats.tracker import RequestTracker
from sagellm_router.types import Endpoint, PoolSnapshot, Role


@dataclass(frozen=True)
class RoleDemand:
    in_flight: float = 0.0
    engine_running: float = 0.0
    engine_waiting: float = 0.0
    kv_usage: float | None = None
    ttft_s: float | None = None


@dataclass(frozen=True)
class PoolDemand:
    pool: str
    queued: float
    held: float
    roles: dict[str, RoleDemand]
    """By role in lower case (general, prefill, decode), as spec.autoscaling names them."""
    draining: tuple[str, ...] = ()
    """Instances of the pool this router holds as draining."""


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def role_demand(
    endpoints: list[Endpoint], tracker: RequestTracker, stats: dict[str, EngineStats]
) -> RoleDemand:
    """One role's demand from its endpoints' router counters and engine scrapes."""
    scraped = [stats[e.url] for e in endpoints if e.url in stats]
    ttfts = [tracker.counters(e.url).ttft_ewma_s for e in endpoints]
    return RoleDemand(
        in_flight=float(sum(tracker.in_flight(e.url) for e in endpoints)),
        engine_running=sum(s.running for s in scraped),
        engine_waiting=sum(s.waiting for s in scraped),
        kv_usage=_mean([s.kv_usage for s in scraped]),
        ttft_s=_mean([t for t in ttfts if t is not None]),
    )


def pool_demand(
    pool: PoolSnapshot,
    queued: float,
    serving_now: bool,
    tracker: RequestTracker,
    stats: dict[str, EngineStats],
) -> PoolDemand:
    """``queued`` is the pool's admission queue; ``serving_now`` whether any serving endpoint
    is routable (when not, every queued request is held)."""
    roles: dict[str, RoleDemand] = {}
    for role in Role:
        endpoints = [e for e in pool.endpoints if e.role is role]
        if endpoints:
            roles[role.value.lower()] = role_demand(endpoints, tracker, stats)
    draining = tuple(sorted(e.instance for e in pool.endpoints if e.draining and e.instance))
    return PoolDemand(pool.name, queued, 0.0 if serving_now else queued, roles, draining)


class DemandCollector(Collector):
    """Renders :class:`PoolDemand` of every pool at scrape time (``source`` computes them)."""

    def __init__(self, source: Callable[[], Iterable[PoolDemand]]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        demands = list(self._source())
        pooled = {
            "queued_requests": ("Requests waiting in the pool's admission queue", "queued"),
            "held_requests": ("Queued requests of a pool with no routable endpoint", "held"),
        }
        for suffix, (doc, attr) in pooled.items():
            family = GaugeMetricFamily(f"{PREFIX}_{suffix}", doc, labels=["pool"])
            for d in demands:
                family.add_metric([d.pool], getattr(d, attr))
            yield family
        yield from _role_families(demands)
        family = GaugeMetricFamily(
            DRAINING, "1 per instance this router holds as draining", labels=["pool", "instance"]
        )
        for d in demands:
            for instance in d.draining:
                family.add_metric([d.pool, instance], 1)
        yield family


_ROLE_SERIES = {
    "in_flight_requests": ("in_flight", "Requests (PD: legs) in flight to the role's engines"),
    "engine_running_requests": ("engine_running", "Engine-reported running requests"),
    "engine_waiting_requests": ("engine_waiting", "Engine-reported waiting requests"),
    "kv_usage_ratio": ("kv_usage", "Mean KV-cache usage of the role's engines (0-1)"),
    "ttft_seconds": ("ttft_s", "Mean router-observed TTFT EWMA of the role's endpoints"),
}


def _role_families(demands: list[PoolDemand]) -> Iterator[Metric]:
    for suffix, (attr, doc) in _ROLE_SERIES.items():
        family = GaugeMetricFamily(f"{PREFIX}_{suffix}", doc, labels=["pool", "role"])
        for d in demands:
            for role, rd in sorted(d.roles.items()):
                value = getattr(rd, attr)
                if value is not None:
                    family.add_metric([d.pool, role], value)
        yield family


def arrivals_counter(registry: CollectorRegistry) -> Counter:
    return Counter(
        f"{PREFIX}_arrivals", "Requests that reached the pool", ["pool"], registry=registry
    )
