"""prefix_aware: route to the engine most likely to hold the prompt's prefix in its KV cache.

Inputs: the prompt text, the candidates and ``LoadView.load``. The router keeps, per endpoint, an
LRU set of chained block hashes of the prompts it sent there (block = ``block_chars`` characters;
hash i covers blocks 0..i, so a hit on hash i implies the whole prefix).

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
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from sagellm_router.routing.base import (
    LoadView,
    RouteInput,
    StrategyContext,
    build_params,
    least_loaded,
)
from sagellm_router.types import Endpoint


@dataclass(frozen=True)
class PrefixAwareParams:
    block_chars: int = 64
    max_blocks_per_endpoint: int = 100_000
    max_blocks_per_request: int = 256
    miss_cost: float = 32.0
    balance_abs: float = 32.0
    balance_rel: float = 1.5


def block_hashes(text: str, block_chars: int, limit: int) -> list[int]:
    """Chained hashes of the full ``block_chars``-character blocks of ``text`` (at most ``limit``).

    Python's own ``hash`` (per-process salted) is enough: the prefix model lives in one router
    process, and it is ~4x cheaper than a keyed digest per block.
    """
    hashes: list[int] = []
    digest = 0
    for start in range(0, min(len(text), block_chars * limit) - block_chars + 1, block_chars):
        digest = hash((digest, text[start : start + block_chars]))
        hashes.append(digest)
    return hashes


class PrefixAware:
    def __init__(self, params: PrefixAwareParams, rng: random.Random) -> None:
        if params.block_chars <= 0 or params.max_blocks_per_endpoint <= 0:
            raise ValueError("prefix_aware: block_chars and max_blocks_per_endpoint must be > 0")
        if params.miss_cost < 0:
            raise ValueError(f"prefix_aware: miss_cost must be >= 0, got {params.miss_cost}")
        self._params = params
        self._rng = rng
        self._cache: dict[str, OrderedDict[int, None]] = {}

    @classmethod
    def create(cls, ctx: StrategyContext) -> PrefixAware:
        return cls(build_params(PrefixAwareParams, ctx.params, "prefix_aware"), ctx.rng)

    def matched_blocks(self, url: str, hashes: Sequence[int]) -> int:
        cache = self._cache.get(url)
        if not cache:
            return 0
        count = 0
        for digest in hashes:
            if digest not in cache:
                break
            count += 1
        return count

    def _hashes(self, text: str) -> list[int]:
        p = self._params
        return block_hashes(text, p.block_chars, p.max_blocks_per_request)

    def cached_chars(self, url: str, text: str) -> int:
        """How many leading characters of ``text`` ``url`` likely holds in its prefix cache."""
        return self.matched_blocks(url, self._hashes(text)) * self._params.block_chars

    def record(self, url: str, text: str) -> None:
        """Remember that ``text`` was sent to ``url`` (for picks made by another strategy)."""
        self._record(url, self._hashes(text))

    def pick(
        self, request: RouteInput, candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint:
        hashes = self._hashes(request.prompt_text)
        chosen = self._choose(hashes, candidates, loads)
        self._record(chosen.url, hashes)
        return chosen

    def _choose(
        self, hashes: Sequence[int], candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint:
        if not hashes:
            return least_loaded(candidates, loads, self._rng)
        miss_cost = self._params.miss_cost / len(hashes)
        best: list[Endpoint] = []
        best_key = (float("inf"), float("inf"))
        min_load = float("inf")
        for endpoint in candidates:
            load = loads.load(endpoint.url)
            min_load = min(min_load, load)
            missing = len(hashes) - self.matched_blocks(endpoint.url, hashes)
            key = (load + miss_cost * missing, load)
            if key < best_key:
                best, best_key = [endpoint], key
            elif key == best_key:
                best.append(endpoint)
        p = self._params
        best_load = best_key[1]
        if best_load - min_load > p.balance_abs and best_load > p.balance_rel * min_load:
            return least_loaded(candidates, loads, self._rng)
        return best[0] if len(best) == 1 else self._rng.choice(best)

    def _record(self, url: str, hashes: Sequence[int]) -> None:
        cache = self._cache.setdefault(url, OrderedDict())
        for digest in hashes:
            cache[digest] = None
            cache.move_to_end(digest)
        while len(cache) > self._params.max_blocks_per_endpoint:
            cache.popitem(last=False)

    def forget(self, keep: set[str]) -> None:
        """Drop the prefix model of endpoints that left the pool."""
        for url in [u for u in self._cache if u not in keep]:
            del self._cache[url]
