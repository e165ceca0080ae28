"""The router's per-app state and the routing pipeline: filters -> strategy -> endpoint.

Request path: parse -> resolve pool -> admission (router-wide cap, then the pool's queue) ->
candidates (``candidates``: ready, not draining, not ejected, right role; allowed by the
ticket) -> strategy -> PD orchestration (``pd.orchestrator``) -> proxy.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from sagellm_core.api.pool import SchedulingSpec
from sagellm_core.plugins import Plugin
from sagellm_core.scheduling.registry import (
    BUILTIN_POLICIES,
    policies_with_plugins,
    policy_plugins,
)
from sagellm_core.tokens import TokenCounter, estimate_tokens
from sagellm_router.admission import ConcurrencyLimit
from sagellm_router.candidates import (
    may_hold,
    prefill_candidates,
    routable,
    serving_candidates,
    starting,
)
from sagellm_router.config import RouterSettings, StaticDiscoverySettings
from sagellm_router.demand import DemandCollector, PoolDemand, arrivals_counter, pool_demand
from sagellm_router.discovery.base import PoolTable
from sagellm_router.errors import ApiError
from sagellm_router.health import IMMEDIATE, HealthBook, ProbeTarget
from sagellm_router.kv.feeds import KvCollector, KvFeeds, wanted_feeds
from sagellm_router.metrics import RouterMetrics
from sagellm_router.pool_runtime import LoadSources, PoolRuntime, build_runtime, policy_settings
from sagellm_router.routing.base import LoadModel, Loads, RouteInput
from sagellm_router.routing.registry import (
    StrategyBook,
    strategies_with_plugins,
    strategy_plugins,
)
from sagellm_router.stats.engine import EngineStats
from sagellm_router.stats.tracker import Clock, RequestTracker
from sagellm_router.types import Endpoint, PoolSnapshot, Role
from sagellm_router.waits import PendingAnswers

__all__ = [
    "RouterState",
    "build_state",
    "may_hold",
    "prefill_candidates",
    "routable",
    "serving_candidates",
    "starting",
]

log = logging.getLogger(__name__)


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
    runtimes: dict[str, PoolRuntime] = field(default_factory=dict)
    policy_plugins: dict[str, Plugin] = field(default_factory=dict)
    #: served model -> the engine's own tokenizer (in-process engines register theirs)
    tokenizers: dict[str, TokenCounter] = field(default_factory=dict)
    shutting_down: bool = False
    pending: PendingAnswers = field(default_factory=PendingAnswers)
    kv: KvFeeds = field(default_factory=KvFeeds)
    _warned: set[str] = field(default_factory=set)
    _ids: random.Random = field(default_factory=lambda: random.Random(os.urandom(16)))

    def __post_init__(self) -> None:
        self.loads = Loads(
            self.tracker,
            self.engine_stats,
            self.clock,
            LoadModel(stale_after_s=self.settings.scrape.stale_after_s),
        )
        self.arrivals = arrivals_counter(self.metrics.registry)
        self.metrics.registry.register(DemandCollector(self.demands))
        self.metrics.registry.register(KvCollector(self.kv))

    def demands(self) -> list[PoolDemand]:
        """Each pool's demand now (the ``sagellm_router_demand_*`` series)."""
        out = []
        for pool in self.table.pools:
            runtime = self.runtimes.get(pool.name)
            queued = float(runtime.queue.queued) if runtime is not None else 0.0
            serving = bool(serving_candidates(pool, self.health.ejected))
            out.append(pool_demand(pool, queued, serving, self.tracker, self.engine_stats))
        return out

    def token_counter(self, model: str) -> TokenCounter:
        """How prompt tokens of ``model`` are counted: its engine's tokenizer, else core's
        estimate."""
        return self.tokenizers.get(model, estimate_tokens)

    def new_request_id(self) -> str:
        """A fresh 32-hex-digit request id (seeded once from the OS; no syscall per request)."""
        return f"{self._ids.getrandbits(128):032x}"

    def apply_pools(self, pools: Iterable[PoolSnapshot]) -> None:
        """Swap in a new set of pools and drop state of endpoints that went away."""
        self.table.replace(pools)
        self._sync_runtimes()
        urls = {e.url for e in self.table.endpoints()}
        self.health.forget(urls)
        self.tracker.forget(urls)
        for pool in self.table.pools:
            self.strategies.forget(pool.name, {e.url for e in pool.endpoints})
        self.sync_kv_feeds()
        self.update_endpoint_gauges()

    def sync_kv_feeds(self) -> None:
        """Follow the KV events of the pools routed by ``kv_aware`` (``kv.feeds``)."""
        pd = self.settings.pd
        self.kv.sync(wanted_feeds(
            self.table.pools, lambda pool: self.strategy_name(pool, None), self.strategies.get,
            (pd.prefill_routing, pd.decode_routing),
        ))  # fmt: skip

    def _sync_runtimes(self) -> None:
        """One runtime per pool; rebuilt only when the pool's scheduling settings change."""
        assert self.loads is not None
        sources = LoadSources(
            self.tracker, self.engine_stats, self.loads, self.clock,
            self.settings.scrape.stale_after_s,
        )  # fmt: skip
        fresh: dict[str, PoolRuntime] = {}
        for pool in self.table.pools:
            spec = self._known_policy(pool, pool.effective_scheduling())
            current = self.runtimes.get(pool.name)
            if current is None or current.spec != spec:
                current = build_runtime(
                    pool.name, spec, self.settings, self._routable_of(pool.name), sources,
                    self.policy_plugins,
                )  # fmt: skip
            fresh[pool.name] = current
        self.runtimes = fresh

    @property
    def policy_names(self) -> list[str]:
        return sorted([*BUILTIN_POLICIES, *self.policy_plugins])

    def _known_policy(self, pool: PoolSnapshot, spec: SchedulingSpec) -> SchedulingSpec:
        """``spec``, or fifo with a warning when it names a policy nobody provides."""
        if str(spec.policy) in self.policy_names:
            return spec
        if pool.name not in self._warned:
            self._warned.add(pool.name)
            log.warning(
                "pool %s names unknown scheduling policy %r; using 'fifo' (known: %s)",
                pool.name, str(spec.policy), ", ".join(self.policy_names),
            )  # fmt: skip
        return spec.model_copy(update={"policy": "fifo"})

    def _routable_of(self, name: str) -> Callable[[], list[Endpoint]]:
        def endpoints() -> list[Endpoint]:
            pool = self.table.get(name)
            if pool is None:
                return []
            return [e for e in pool.endpoints if routable(e, self.health.ejected)]

        return endpoints

    def runtime(self, pool: PoolSnapshot) -> PoolRuntime:
        runtime = self.runtimes.get(pool.name)
        if runtime is None:  # a pool table swapped in without apply_pools
            self._sync_runtimes()
            runtime = self.runtimes[pool.name]
        return runtime

    def set_policy(self, pool_name: str | None, policy: str) -> list[str]:
        """Switch the scheduling policy of one pool (or all when None); returns the pools."""
        if pool_name is not None and pool_name not in self.runtimes:
            known = ", ".join(sorted(self.runtimes)) or "none"
            raise ApiError(404, f"unknown pool {pool_name!r}; known: {known}", param="pool")
        names = [pool_name] if pool_name is not None else sorted(self.runtimes)
        for name in names:
            try:
                self.runtimes[name].queue.set_policy(policy)
            except ValueError as exc:
                raise ApiError(400, str(exc), param="policy") from exc
        return names

    def scheduling_status(self) -> dict[str, object]:
        """Per pool: configured and active policy (and why, for adaptive), queue, PD threshold."""
        return {name: rt.status() for name, rt in sorted(self.runtimes.items())}

    def refresh_scheduling_gauges(self) -> None:
        m = self.metrics
        m.policy.clear()
        for name, rt in self.runtimes.items():
            snap = rt.queue.snapshot()
            status = snap.get("policy_status")
            active = status.get("active") if isinstance(status, dict) else snap["policy"]
            m.policy.labels(name, str(snap["policy"]), str(active)).set(1)
            m.queued.labels(name).set(rt.queue.queued)
            m.admitted_active.labels(name).set(rt.queue.active)
            m.pd_threshold.labels(name).set(rt.tuner.threshold)

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
        """Not shutting down, and some pool can take a request now or can scale from zero (a
        router that went unready with every pool at zero would never see the request that
        starts one)."""
        ejected = self.health.ejected
        return not self.shutting_down and any(
            pool.scale_from_zero or serving_candidates(pool, ejected) for pool in self.table.pools
        )

    def dead(self, pool: PoolSnapshot) -> bool:
        """No endpoint of ``pool`` can take a request now, and none is starting (checked for
        every request: stops at the first endpoint that is either)."""
        ejected = self.health.ejected
        if any(e.role is not Role.PREFILL and routable(e, ejected) for e in pool.endpoints):
            return False
        return not may_hold(pool)

    def dead_pool_error(self, names: str) -> ApiError:
        return ApiError(
            503,
            f"pool {names} has no ready endpoint and none starting; retry later",
            retry_after=self.settings.health.probe_interval_s,
        )

    def reject_queued_of_dead_pools(self) -> None:
        """Answer requests waiting in the queue of a pool that died meanwhile (503 at once,
        rather than at their queue timeout)."""
        for name, runtime in self.runtimes.items():
            pool = self.table.get(name)
            if runtime.queue.queued and pool is not None and self.dead(pool):
                err = self.dead_pool_error(name)
                runtime.queue.reject_waiting(err.message, err.retry_after or 1.0, "no_endpoint")

    def endpoint_failed(self, pool: str, endpoint: Endpoint, reason: str) -> bool:
        """Record a failed request on ``endpoint``; on ejection count and log it with
        ``reason``. Every path that sees an engine fail comes here. True when ejected."""
        if not self.health.failure(endpoint.url, reason, self.clock()):
            return False
        self.metrics.child(self.metrics.ejections, pool, endpoint.instance, reason).inc()
        self.update_endpoint_gauges()
        if reason in IMMEDIATE:  # it hangs: whoever still waits on it goes elsewhere
            self.pending.release(endpoint.url)
        log.warning(
            "endpoint %s (%s) ejected: %s", endpoint.instance, endpoint.url, reason,
            extra={"endpoint": endpoint.url, "pool": pool, "reason": reason},
        )  # fmt: skip
        return True

    def probe_targets(self) -> dict[str, ProbeTarget]:
        """What to send each endpoint's re-admission probe: its pool's model and task."""
        return {
            e.url: ProbeTarget(pool.model, pool.task)
            for pool in self.table.pools
            for e in pool.endpoints
        }

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
        allowed: Collection[str] | None = None,
    ) -> tuple[PoolSnapshot, Endpoint] | None:
        """The first pool with candidates, and the endpoint its strategy picks.

        Candidates in ``allowed`` (the admission ticket's instances) are preferred; when none
        of them is left (a retry), any other candidate is used rather than failing.
        """
        assert self.loads is not None
        for pool in pools:
            candidates = self._candidates(pool, exclude, allowed)
            if candidates:
                strategy = self.strategies.get(pool.name, self.strategy_name(pool, override))
                return pool, strategy.pick(request, candidates, self.loads)
        return None

    def _candidates(
        self, pool: PoolSnapshot, exclude: Collection[str], allowed: Collection[str] | None
    ) -> list[Endpoint]:
        candidates = serving_candidates(pool, self.health.ejected, exclude)
        if allowed is not None:
            candidates = [e for e in candidates if e.url in allowed] or candidates
        return candidates

    async def prepare_pick(
        self,
        request: RouteInput,
        pools: Iterable[PoolSnapshot],
        override: str | None,
        allowed: Collection[str] | None = None,
    ) -> None:
        """Await the optional ``prepare(request, candidates)`` of the strategy ``choose`` will
        use first, so a strategy that must ask someone before picking (the benchmark's
        ``oracle`` asks the engines) can do it without blocking ``pick``."""
        pools = tuple(pools)
        if len(pools) == 1:  # the usual case: without a prepare, no candidates to look up
            strategy = self.strategies.get(pools[0].name, self.strategy_name(pools[0], override))
            if getattr(strategy, "prepare", None) is None:
                return
        for pool in pools:
            candidates = self._candidates(pool, (), allowed)
            if candidates:
                strategy = self.strategies.get(pool.name, self.strategy_name(pool, override))
                prepare = getattr(strategy, "prepare", None)
                if prepare is not None:
                    await prepare(request, candidates)
                return


def build_state(settings: RouterSettings, clock: Clock, seed: int | None = None) -> RouterState:
    """The router core's state; raises ``PluginError`` / ``ValueError`` on a bad plugin or name."""
    policies = policy_plugins(settings.plugins)
    policies_with_plugins(policies, policy_settings(settings))  # fail now on a bad factory
    strategies = StrategyBook(
        strategies_with_plugins(strategy_plugins(settings.plugins)),
        settings.routing.params,
        clock,
        settings.limits.max_in_flight_per_endpoint,
        seed=seed,
    )
    named = {
        "routing.default": settings.routing.default,
        "pd.prefill_routing": settings.pd.prefill_routing,
        "pd.decode_routing": settings.pd.decode_routing,
    }
    for where, name in named.items():
        if name is not None and not strategies.knows(name):
            raise ValueError(
                f"{where} {name!r} is not a known strategy; known: {', '.join(strategies.names)}"
            )
    _check_static_policies(settings, [*BUILTIN_POLICIES, *policies])
    return RouterState(
        policy_plugins=policies,
        settings=settings,
        clock=clock,
        table=PoolTable(),
        strategies=strategies,
        tracker=RequestTracker(clock),
        health=HealthBook(
            settings.health.failure_threshold,
            settings.health.probe_interval_s,
            settings.health.probe_backoff_max_s,
        ),
        metrics=RouterMetrics(),
        admission=ConcurrencyLimit(settings.limits.max_concurrent_requests),
        kv=KvFeeds(replica_sync=settings.routing.replica_sync),
    )


def _check_static_policies(settings: RouterSettings, known: list[str]) -> None:
    discovery = settings.discovery
    if not isinstance(discovery, StaticDiscoverySettings):
        return
    for pool in discovery.pools:
        name = str(pool.snapshot().effective_scheduling().policy)
        if name not in known:
            raise ValueError(
                f"pool {pool.name!r}: scheduling policy {name!r} is not known; "
                f"known: {', '.join(sorted(known))}"
            )
