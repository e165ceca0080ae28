"""prefix_aware: route to the engine most likely to hold the prompt's prefix in its KV cache.

Inputs: the prompt text, the candidates and ``LoadView.load``. The router keeps, per endpoint, an
LRU set of chained block hashes of the prompts it sent there (``routing.prefix_index``: one
index per pool, shared with the PD orchestrator).

Each candidate costs ``load + miss_cost * uncached`` where ``uncached`` is the share of the
prompt's blocks it does not hold (0 = whole prefix cached, 1 = nothing): a cache miss is worth
``miss_cost`` requests of load, because recomputing a long prefix delays this request and every
request batched with it. The cheapest candidate wins, ties going to the lower load, then at
random — so a popular prefix held by several engines is spread over all of them, and spills to
a new engine only once its holders are ``miss_cost`` busier than the rest. As a guard, when the
winner's load exceeds the least load by more than ``balance_abs`` and by a factor
``balance_rel`` the least-loaded endpoint wins instead (SGLang's cache_aware rule). After the
pick the prompt's blocks are recorded for the winner.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from sagellm_router.routing.base import (
    LoadView,
    RouteInput,
    StrategyContext,
    build_params,
    cheapest_for_cache,
    least_loaded,
)
from sagellm_router.routing.prefix_index import PrefixIndex, PrefixIndexParams, block_hashes
from sagellm_router.types import Endpoint

__all__ = ["PrefixAware", "PrefixAwareParams", "block_hashes"]


@dataclass(frozen=True)
class PrefixAwareParams:
    block_chars: int = 64
    max_blocks_per_endpoint: int = 100_000
    max_blocks_per_request: int = 256
    miss_cost: float = 32.0
    balance_abs: float = 32.0
    balance_rel: float = 1.5


class PrefixAware:
    """``index``: the pool's shared prefix index (the strategy book passes it); without one the
    strategy keeps its own."""

    def __init__(
        self, params: PrefixAwareParams, rng: random.Random, index: PrefixIndex | None = None
    ) -> None:
        if params.miss_cost < 0:
            raise ValueError(f"prefix_aware: miss_cost must be >= 0, got {params.miss_cost}")
        self._params = params
        self._rng = rng
        self.index = index or PrefixIndex(PrefixIndexParams.of(asdict(params)))

    @classmethod
    def create(cls, ctx: StrategyContext) -> PrefixAware:
        params = build_params(PrefixAwareParams, ctx.params, "prefix_aware")
        return cls(params, ctx.rng, ctx.prefix_index)

    def cached_chars(self, url: str, text: str) -> int:
        """How many leading characters of ``text`` ``url`` likely holds in its prefix cache."""
        return self.index.cached_chars(url, text)

    def record(self, url: str, text: str) -> None:
        """Remember that ``text`` was sent to ``url`` (for picks made by another strategy)."""
        self.index.record(url, self.index.hashes(text))

    def pick(
        self, request: RouteInput, candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint:
        hashes = self.index.hashes(request.prompt_text)
        chosen = self._choose(hashes, candidates, loads)
        self.index.record(chosen.url, hashes)
        return chosen

    def _choose(
        self, hashes: Sequence[int], candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint:
        if not hashes:
            return least_loaded(candidates, loads, self._rng)
        total = len(hashes)

        def held(endpoint: Endpoint) -> float:
            return self.index.matched_blocks(endpoint.url, hashes) / total

        return cheapest_for_cache(candidates, loads, held, self._params, self._rng)

    def forget(self, keep: set[str]) -> None:
        """Drop the prefix model of endpoints that left the pool."""
        self.index.forget(keep)
