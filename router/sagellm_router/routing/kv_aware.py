"""kv_aware: route to the engine that truly holds the prompt's prefix, from the engines' KV events.

The strategy follows the pool's engines' KV-cache events (``sagellm_router.kv``: discovery via
``/kv_event_sources``, started on the first pick, one follower per strategy instance), tokenizes
the prompt, looks up how many leading blocks each candidate holds, and scores like
``prefix_aware``: ``load + miss_cost * uncached share``, the cheapest wins, with the same
balance guard. When none of the candidates publishes events yet (or the prompt has no full
block) the pick falls back to ``prefix_aware``, which also learns every pick so it is warm.

Tokenizer: only ``sim`` is implemented (the simulator's tokenizer, so simulated pools match
exactly for completions prompts). Chat requests are tokenized from the router's rendering of
the messages, which differs from the engine's chat template: they rarely match and fall back.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sagellm_core.sim_tokens import tokenize
from sagellm_router.kv.index import KvIndex, request_keys
from sagellm_router.kv.subscriber import KvEventFollower
from sagellm_router.routing.base import (
    LoadView,
    RouteInput,
    StrategyContext,
    StrategyParamError,
    build_params,
    least_loaded,
)
from sagellm_router.routing.prefix_aware import PrefixAware, PrefixAwareParams
from sagellm_router.types import Endpoint

TOKENIZERS = ("sim",)


@dataclass(frozen=True)
class KvAwareParams:
    tokenizer: str = "sim"
    max_blocks_per_engine: int = 65_536
    max_blocks_per_request: int = 1024
    miss_cost: float = 32.0
    balance_abs: float = 32.0
    balance_rel: float = 1.5


class KvAware:
    def __init__(
        self, params: KvAwareParams, rng: random.Random, index: KvIndex | None = None,
        follow: bool = True,
    ) -> None:  # fmt: skip
        if params.tokenizer not in TOKENIZERS:
            raise StrategyParamError(
                f"routing.params.kv_aware.tokenizer: only {TOKENIZERS} is implemented, "
                f"got {params.tokenizer!r}"
            )
        self._params = params
        self._rng = rng
        self.index = index or KvIndex(params.max_blocks_per_engine)
        self._follow = follow
        self._follower: KvEventFollower | None = None
        self._session: Any = None
        self._zmq: Any = None
        self._tracked: set[str] = set()
        self.fallback = PrefixAware(
            PrefixAwareParams(miss_cost=params.miss_cost, balance_abs=params.balance_abs,
                              balance_rel=params.balance_rel), rng,
        )  # fmt: skip

    @classmethod
    def create(cls, ctx: StrategyContext) -> KvAware:
        return cls(build_params(KvAwareParams, ctx.params, "kv_aware"), ctx.rng)

    def pick(
        self, request: RouteInput, candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint:
        self._track(candidates)
        text = request.prompt_text
        chosen = self._choose(text, candidates, loads)
        if chosen is None:
            return self.fallback.pick(request, candidates, loads)
        self.fallback.record(chosen.url, text)
        return chosen

    def matched(self, text: str, candidates: Sequence[Endpoint]) -> tuple[dict[str, int], int]:
        """Leading blocks each indexed candidate holds, and the prompt's number of blocks."""
        sizes = {u: s for c in candidates if (s := self.index.block_size(u := c.url)) is not None}
        if not sizes:
            return {}, 0
        tokens = tokenize(text)
        limit = self._params.max_blocks_per_request
        keys = {size: request_keys(tokens, size, limit) for size in set(sizes.values())}
        out: dict[str, int] = {}
        for size, block_keys in keys.items():
            urls = [u for u, s in sizes.items() if s == size]
            out.update(self.index.matched_blocks(block_keys, urls))
        return out, max(len(k) for k in keys.values())

    def _choose(
        self, text: str, candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint | None:
        held, total = self.matched(text, candidates)
        if not held or total == 0:
            return None
        p = self._params
        scored = []
        for endpoint in candidates:
            load = loads.load(endpoint.url)
            missing = 1.0 - held.get(endpoint.url, 0) / total
            scored.append(((load + p.miss_cost * missing, load), endpoint))
        best_key = min(key for key, _ in scored)
        best = [e for key, e in scored if key == best_key]
        min_load = min(key[1] for key, _ in scored)
        if best_key[1] - min_load > p.balance_abs and best_key[1] > p.balance_rel * min_load:
            return least_loaded(candidates, loads, self._rng)
        return best[0] if len(best) == 1 else self._rng.choice(best)

    def _track(self, candidates: Sequence[Endpoint]) -> None:
        urls = {c.url for c in candidates}
        if not self._follow or urls <= self._tracked:
            return
        if self._follower is None:
            import aiohttp
            import zmq.asyncio

            self._session = aiohttp.ClientSession()
            self._zmq = zmq.asyncio.Context()
            self._follower = KvEventFollower(self.index, self._session, self._zmq)
        self._tracked |= urls
        self._follower.track(self._tracked)

    async def close(self) -> None:
        """Stop following and release the HTTP session and ZMQ context (if started)."""
        if self._follower is not None:
            await self._follower.close()
            await self._session.close()
            self._zmq.destroy(linger=0)
            self._follower = None

    def forget(self, keep: set[str]) -> None:
        """Endpoints that left the pool: stop following them and drop their blocks."""
        self.fallback.forget(keep)
        gone, self._tracked = self._tracked - keep, self._tracked & keep
        if self._follower is not None:
            self._follower.track(self._tracked)
        for url in gone:
            self.index.drop_engine(url)
