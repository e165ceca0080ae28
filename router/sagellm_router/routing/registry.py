"""The one place where routing strategies are registered, and the per-pool strategy book.

``default_strategies`` are the built-ins; ``strategies_with_plugins`` adds third-party ones
(``sagellm_core.plugins``: entry points in ``sagellm.routing_strategies`` or ``"module:attr"``
references from the config's ``plugins:``), each checked for ``pick`` when first built.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any, cast

from sagellm_core.plugins import ROUTING_STRATEGY, EntryPoints, Plugin, build, discover
from sagellm_router.routing.affinity import Affinity
from sagellm_router.routing.base import Strategy, StrategyContext, StrategyFactory
from sagellm_router.routing.kv_aware import KvAware
from sagellm_router.routing.load_balanced import LoadBalanced
from sagellm_router.routing.locality import Locality
from sagellm_router.routing.power_of_two import PowerOfTwo
from sagellm_router.routing.prefix_aware import PrefixAware
from sagellm_router.routing.prefix_index import PrefixIndex, PrefixIndexParams
from sagellm_router.routing.random_pick import RandomPick
from sagellm_router.routing.round_robin import RoundRobin
from sagellm_router.routing.weighted_round_robin import WeightedRoundRobin
from sagellm_router.stats.tracker import Clock


def default_strategies() -> dict[str, StrategyFactory]:
    """All in-tree routing strategies, name -> factory."""
    return {
        "round_robin": RoundRobin.create,
        "random": RandomPick.create,
        "load_balanced": LoadBalanced.create,
        "power_of_two": PowerOfTwo.create,
        "weighted_round_robin": WeightedRoundRobin.create,
        "affinity": Affinity.create,
        "locality": Locality.create,
        "prefix_aware": PrefixAware.create,
        "kv_aware": KvAware.create,
    }


def strategy_plugins(
    references: Iterable[str] = (), entry_points: EntryPoints | None = None
) -> dict[str, Plugin]:
    """Third-party strategies, validated by name (no clash with built-ins); ``PluginError``."""
    return discover(ROUTING_STRATEGY, references, default_strategies(), entry_points)


def _plugin_factory(item: Plugin, ctx: StrategyContext) -> Strategy:
    return cast(Strategy, build(item, ctx))


def strategies_with_plugins(plugins: Mapping[str, Plugin]) -> dict[str, StrategyFactory]:
    """Built-ins plus plugins; a plugin's product without ``pick`` raises ``PluginError``."""
    factories = default_strategies()
    for name, item in plugins.items():
        factories[name] = partial(_plugin_factory, item)
    return factories


class StrategyBook:
    """Creates and caches one strategy instance per (pool, strategy name)."""

    def __init__(
        self,
        factories: Mapping[str, StrategyFactory],
        params: Mapping[str, dict[str, Any]],
        clock: Clock,
        max_in_flight_per_endpoint: int,
        seed: int | None = None,
    ) -> None:
        unknown = set(params) - set(factories)
        if unknown:
            raise ValueError(
                f"routing.params names unknown strategies {sorted(unknown)}; "
                f"known: {sorted(factories)}"
            )
        self._factories = dict(factories)
        self._params = params
        self._clock = clock
        self._max_in_flight = max_in_flight_per_endpoint
        self._rng = random.Random(seed)
        self._instances: dict[tuple[str, str], Strategy] = {}
        self._index_params = PrefixIndexParams.of(params.get("prefix_aware", {}))
        self._indexes: dict[str, PrefixIndex] = {}
        for name in factories:  # fail at start-up, not on the first request, on bad params
            self._make(name, None)

    @property
    def names(self) -> list[str]:
        return sorted(self._factories)

    def knows(self, name: str) -> bool:
        return name in self._factories

    def get(self, pool: str, name: str) -> Strategy:
        strategy = self._instances.get((pool, name))
        if strategy is None:
            strategy = self._instances[(pool, name)] = self._make(name, self.prefix_index(pool))
        return strategy

    def prefix_index(self, pool: str) -> PrefixIndex:
        """The pool's prefix model, shared by its strategies and its PD orchestration."""
        index = self._indexes.get(pool)
        if index is None:
            index = self._indexes[pool] = PrefixIndex(self._index_params)
        return index

    def _make(self, name: str, index: PrefixIndex | None) -> Strategy:
        ctx = StrategyContext(
            params=dict(self._params.get(name, {})),
            rng=random.Random(self._rng.random()),
            clock=self._clock,
            max_in_flight_per_endpoint=self._max_in_flight,
            prefix_index=index,
        )
        return self._factories[name](ctx)

    def forget(self, pool: str, keep: set[str]) -> None:
        """Tell stateful strategies (and the prefix index) of ``pool`` which endpoint URLs
        still exist."""
        if pool in self._indexes:
            self._indexes[pool].forget(keep)
        for (pool_name, _), strategy in self._instances.items():
            forget = getattr(strategy, "forget", None)
            if pool_name == pool and forget is not None:
                forget(keep)
