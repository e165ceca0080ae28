"""The routing interface shared by every strategy.

A strategy receives the request (``RouteInput``), the candidate endpoints that survived the
filters (ready, not draining, not ejected, right role; never empty) and a ``LoadView``; it returns
one candidate. Strategies that keep state (counters, hash rings, prefix models) get one instance
per pool.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

from sagellm_router.routing.prefix_index import PrefixIndex
from sagellm_router.stats.engine import EngineStats
from sagellm_router.stats.tracker import Clock, RequestTracker
from sagellm_router.types import Endpoint


class RouteInput(Protocol):
    """What strategies may read from a request."""

    @property
    def prompt_text(self) -> str: ...

    @property
    def session_key(self) -> str | None: ...


class LoadView(Protocol):
    """Per-endpoint load, as the router currently believes it."""

    def in_flight(self, url: str) -> int: ...

    def load(self, url: str) -> float: ...


class Strategy(Protocol):
    """Chooses one endpoint among non-empty ``candidates``."""

    def pick(
        self, request: RouteInput, candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint: ...


@dataclass(frozen=True, slots=True)
class StrategyContext:
    """What a strategy factory gets: its parameters, a seeded RNG, a clock, limits and the
    pool's shared prefix index (None outside a strategy book)."""

    params: dict[str, Any] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)
    clock: Clock = field(default=lambda: 0.0)
    max_in_flight_per_endpoint: int = 256
    prefix_index: PrefixIndex | None = None


StrategyFactory = Callable[[StrategyContext], Strategy]


class Seeded:
    """Base of a strategy whose only state is the seeded RNG of its context."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    @classmethod
    def create(cls, ctx: StrategyContext) -> Self:
        return cls(ctx.rng)


class StrategyParamError(ValueError):
    """A strategy was configured with unknown or invalid parameters."""


@dataclass(frozen=True, slots=True)
class LoadModel:
    """How scraped engine numbers and router in-flight counts combine into one load number.

    ``load = in_flight + others + waiting_weight * waiting + kv_weight * kv`` where ``others`` is
    the engine's ``running + waiting`` at the last scrape minus what this router had in flight
    then: the router's own count is exact and fresh but blind to other routers; the scrape sees
    everyone but is up to one interval old. Queued work and a full KV cache cost extra because
    they delay new requests most.
    """

    waiting_weight: float = 1.0
    kv_weight: float = 4.0
    stale_after_s: float = 10.0


class Loads:
    """A ``LoadView`` over the request tracker and the latest engine scrapes."""

    def __init__(
        self,
        tracker: RequestTracker,
        engine_stats: dict[str, EngineStats],
        clock: Clock,
        model: LoadModel | None = None,
    ) -> None:
        self._tracker = tracker
        self._stats = engine_stats
        self._clock = clock
        self._model = model or LoadModel()

    def in_flight(self, url: str) -> int:
        return self._tracker.in_flight(url)

    def load(self, url: str) -> float:
        in_flight = self._tracker.in_flight(url)
        stats = self._stats.get(url)
        if stats is None or self._clock() - stats.at > self._model.stale_after_s:
            return float(in_flight)
        m = self._model
        busy = in_flight + stats.others(stats.running + stats.waiting)
        return busy + m.waiting_weight * stats.waiting + m.kv_weight * stats.kv_usage


class CacheCost(Protocol):
    """The cache-aware strategies' cost parameters (prefix_aware, kv_aware, the oracle)."""

    @property
    def miss_cost(self) -> float: ...
    @property
    def balance_abs(self) -> float: ...
    @property
    def balance_rel(self) -> float: ...


def cheapest_for_cache(
    candidates: Sequence[Endpoint],
    loads: LoadView,
    held: Callable[[Endpoint], float],
    cost: CacheCost,
    rng: random.Random,
) -> Endpoint:
    """The candidate with the lowest ``load + miss_cost * (1 - held share of the prompt)``
    (ties: lower load, then random); when the winner's load exceeds the least by
    ``balance_abs`` and by a factor ``balance_rel``, the least loaded instead."""
    best: list[Endpoint] = []
    best_key = (float("inf"), float("inf"))
    min_load = float("inf")
    for endpoint in candidates:
        load = loads.load(endpoint.url)
        min_load = min(min_load, load)
        key = (load + cost.miss_cost * (1.0 - held(endpoint)), load)
        if key < best_key:
            best, best_key = [endpoint], key
        elif key == best_key:
            best.append(endpoint)
    best_load = best_key[1]
    if best_load - min_load > cost.balance_abs and best_load > cost.balance_rel * min_load:
        return least_loaded(candidates, loads, rng)
    return best[0] if len(best) == 1 else rng.choice(best)


def least_loaded(candidates: Sequence[Endpoint], loads: LoadView, rng: random.Random) -> Endpoint:
    """The candidate with the lowest load; ties broken at random."""
    best: list[Endpoint] = []
    best_load = float("inf")
    for endpoint in candidates:
        value = loads.load(endpoint.url)
        if value < best_load:
            best, best_load = [endpoint], value
        elif value == best_load:
            best.append(endpoint)
    return best[0] if len(best) == 1 else rng.choice(best)


def build_params(cls: Callable[..., Any], params: dict[str, Any], strategy: str) -> Any:
    """Instantiate a strategy's params dataclass, naming the strategy on bad keys."""
    try:
        return cls(**params)
    except TypeError as exc:
        raise StrategyParamError(f"routing.params.{strategy}: {exc}") from exc
