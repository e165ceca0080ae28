"""The router's per-app state and the routing pipeline: filters -> strategy -> endpoint.

Request path: parse -> resolve pool -> admission -> candidates (ready, not draining, not ejected,
right role) -> strategy -> proxy. ``serving_candidates`` is where PD orchestration will pick
prefill/decode pairs once it lands; today a pool without General endpoints is served by its
Decode endpoints (a vLLM decode instance can also prefill locally).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from sagellm_router.admission import ConcurrencyLimit
from sagellm_router.config import RouterSettings
from sagellm_router.discovery.base import PoolTable
from sagellm_router.errors import ApiError
from sagellm_router.health import HealthBook
from sagellm_router.metrics import RouterMetrics
from sagellm_router.routing.base import LoadModel, Loads, RouteInput
from sagellm_router.routing.registry import StrategyBook, default_strategies
from sagellm_router.stats.engine import EngineStats
from sagellm_router.stats.tracker import Clock, RequestTracker
from sagellm_router.types import Endpoint, PoolSnapshot, Role

log = logging.getLogger(__name__)


def routable(endpoint: Endpoint, ejected: Collection[str]) -> bool:
    return endpoint.ready and not endpoint.draining and endpoint.url not in ejected


def serving_candidates(
    pool: PoolSnapshot, ejected: Collection[str], exclude: Collection[str] = ()
) -> list[Endpoint]:
    """Endpoints of ``pool`` that may take a new whole request."""
    usable = [e for e in pool.endpoints if routable(e, ejected) and e.url not in exclude]
    general = [e for e in usable if e.role is Role.GENERAL]
    return general or [e for e in usable if e.role is Role.DECODE]


@dataclass
class RouterState:
    """Everything one router app owns; created by ``build_state``, never global."""

    settings: RouterSettings
    clock: Clock
    table: PoolTable
    strategies: StrategyBook
    tracker: RequestTracker
    health: HealthBook
    metrics: RouterMetrics
    admission: ConcurrencyLimit
    engine_stats: dict[str, EngineStats] = field(default_factory=dict)
    loads: Loads | None = None
    shutting_down: bool = False
    _warned: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.loads = Loads(
            self.tracker,
            self.engine_stats,
            self.clock,
            LoadModel(stale_after_s=self.settings.scrape.stale_after_s),
        )

    def apply_pools(self, pools: Iterable[PoolSnapshot]) -> None:
        """Swap in a new set of pools and drop state of endpoints that went away."""
        self.table.replace(pools)
        urls = {e.url for e in self.table.endpoints()}
        self.health.forget(urls)
        self.tracker.forget(urls)
        for pool in self.table.pools:
            self.strategies.forget(pool.name, {e.url for e in pool.endpoints})
        self.update_endpoint_gauges()

    def update_endpoint_gauges(self) -> None:
        gauge = self.metrics.endpoints
        gauge.clear()
        for pool in self.table.pools:
            for endpoint in pool.endpoints:
                gauge.labels(pool.name, self._state_of(endpoint)).inc()

    def _state_of(self, endpoint: Endpoint) -> str:
        if endpoint.url in self.health.ejected:
            return "ejected"
        if not endpoint.ready:
            return "not_ready"
        return "draining" if endpoint.draining else "routable"

    def ready(self) -> bool:
        ejected = self.health.ejected
        return not self.shutting_down and any(
            serving_candidates(pool, ejected) for pool in self.table.pools
        )

    def strategy_name(self, pool: PoolSnapshot, override: str | None) -> str:
        """Header override > pool default > router default; a bad pool value falls back."""
        if override is not None:
            if not self.strategies.knows(override):
                raise ApiError(
                    400,
                    f"unknown routing strategy {override!r} in x-routing-strategy; known: "
                    + ", ".join(self.strategies.names),
                    param="x-routing-strategy",
                )
            return override
        if pool.routing and self.strategies.knows(pool.routing):
            return pool.routing
        if pool.routing and pool.name not in self._warned:
            self._warned.add(pool.name)
            log.warning(
                "pool %s names unknown routing strategy %r; using %r",
                pool.name,
                pool.routing,
                self.settings.routing.default,
            )
        return self.settings.routing.default

    def choose(
        self,
        request: RouteInput,
        pools: Iterable[PoolSnapshot],
        override: str | None,
        exclude: Collection[str],
    ) -> tuple[PoolSnapshot, Endpoint] | None:
        """The first pool with candidates, and the endpoint its strategy picks."""
        assert self.loads is not None
        for pool in pools:
            candidates = serving_candidates(pool, self.health.ejected, exclude)
            if candidates:
                strategy = self.strategies.get(pool.name, self.strategy_name(pool, override))
                return pool, strategy.pick(request, candidates, self.loads)
        return None


def build_state(settings: RouterSettings, clock: Clock, seed: int | None = None) -> RouterState:
    strategies = StrategyBook(
        default_strategies(),
        settings.routing.params,
        clock,
        settings.limits.max_in_flight_per_endpoint,
        seed=seed,
    )
    if not strategies.knows(settings.routing.default):
        raise ValueError(
            f"routing.default {settings.routing.default!r} is not a known strategy; "
            f"known: {', '.join(strategies.names)}"
        )
    return RouterState(
        settings=settings,
        clock=clock,
        table=PoolTable(),
        strategies=strategies,
        tracker=RequestTracker(clock),
        health=HealthBook(settings.health.failure_threshold),
        metrics=RouterMetrics(),
        admission=ConcurrencyLimit(settings.limits.max_concurrent_requests),
    )
