"""``kv_aware_recent``: a benchmark-only variant of ``kv_aware`` that bridges the KV events' lag.

An engine publishes a prompt's blocks only once it has admitted and computed the prompt; at
load, requests queue in the engine first. Requests for the same prefix that arrive meanwhile
look uncached everywhere to ``kv_aware`` and go by load, to engines that then compute the
prefix again. ``kv_aware_recent`` scores like ``kv_aware`` but counts, for each candidate, the
larger of the share the index says it holds and the share of the prompt this router sent it
within the last ``recent_s`` seconds (character blocks, as ``prefix_aware``). Older than the
window, the engines' events are the truth.

The router app feeds the KV index only of pools routed by the built-in ``kv_aware``
(``sagellm_router.kv.feeds``), so this plugin follows the engines itself: on its first pick it
starts a ``KvEventFollower`` for the candidates (its own HTTP session and ZMQ context).
Loaded as a plugin by the routing benchmark (``PLUGINS``); not a built-in.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from sagellm_core.plugins import plugin
from sagellm_router.routing.base import (
    LoadView,
    RouteInput,
    StrategyContext,
    build_params,
    least_loaded,
)
from sagellm_router.routing.kv_aware import KvAware, KvAwareParams
from sagellm_router.routing.prefix_aware import block_hashes
from sagellm_router.stats.tracker import Clock
from sagellm_router.types import Endpoint

PLUGINS = {"kv_aware_recent": "sagellm_router.bench.kv_variants:create_recent"}
BLOCK_CHARS = 64
MAX_RECENT_BLOCKS = 200_000


@dataclass(frozen=True)
class RecentParams(KvAwareParams):
    recent_s: float = 2.0


class Recent:
    """Character blocks of the prompts sent to each engine, each with the time it was sent."""

    def __init__(self, window_s: float, clock: Clock) -> None:
        self._window = window_s
        self._clock = clock
        self._sent: dict[str, OrderedDict[int, float]] = {}

    def record(self, url: str, hashes: Sequence[int]) -> None:
        now = self._clock()
        sent = self._sent.setdefault(url, OrderedDict())
        for h in hashes:
            sent[h] = now
            sent.move_to_end(h)
        oldest = now - max(self._window, 1.0)
        while sent and (len(sent) > MAX_RECENT_BLOCKS or next(iter(sent.values())) < oldest):
            sent.popitem(last=False)

    def share(self, url: str, hashes: Sequence[int]) -> float:
        """Share of ``hashes`` (a leading run) sent to ``url`` within the window."""
        sent = self._sent.get(url)
        if not sent or not hashes:
            return 0.0
        since = self._clock() - self._window
        n = 0
        for h in hashes:
            at = sent.get(h)
            if at is None or at < since:
                break
            n += 1
        return n / len(hashes)


class KvAwareRecent(KvAware):
    def __init__(
        self, params: RecentParams, rng: random.Random, clock: Clock, follow: bool = True
    ) -> None:
        base = {f.name: getattr(params, f.name) for f in fields(KvAwareParams)}
        super().__init__(KvAwareParams(**base), rng)
        self._recent = Recent(params.recent_s, clock)
        self._follow = follow
        self._follower: Any = None
        self._io: tuple[Any, Any] | None = None
        self._tracked: set[str] = set()

    def pick(
        self, request: RouteInput, candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint:
        self._track(candidates)
        chosen = super().pick(request, candidates, loads)
        self._recent.record(chosen.url, block_hashes(request.prompt_text, BLOCK_CHARS, 1024))
        return chosen

    def _choose(
        self, request: RouteInput, candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint | None:
        if not any(self.index.block_size(c.url) is not None for c in candidates):
            return None
        tokens = self.tokens(request)
        share = None if tokens is None else self.cached_share(tokens, candidates)
        if share is None:
            return None
        hashes = block_hashes(request.prompt_text, BLOCK_CHARS, 1024)
        p = self._params
        scored = []
        for endpoint in candidates:
            load = loads.load(endpoint.url)
            held = max(share.get(endpoint.url, 0.0), self._recent.share(endpoint.url, hashes))
            scored.append(((load + p.miss_cost * (1.0 - held), load), endpoint))
        best_key = min(key for key, _ in scored)
        min_load = min(key[1] for key, _ in scored)
        if best_key[1] - min_load > p.balance_abs and best_key[1] > p.balance_rel * min_load:
            return least_loaded(candidates, loads, self._rng)
        best = [e for key, e in scored if key == best_key]
        return best[0] if len(best) == 1 else self._rng.choice(best)

    def _track(self, candidates: Sequence[Endpoint]) -> None:
        if not self._follow:
            return
        if self._follower is None:
            import aiohttp
            import zmq.asyncio

            from sagellm_router.kv.subscriber import KvEventFollower

            self._io = (aiohttp.ClientSession(), zmq.asyncio.Context())
            self._follower = KvEventFollower(self.index, *self._io)
        urls = {c.url for c in candidates}
        if not urls <= self._tracked:
            self._tracked |= urls
            self._follower.track(self._tracked)

    async def close(self) -> None:
        if self._follower is not None and self._io is not None:
            await self._follower.close()
            await self._io[0].close()
            self._io[1].destroy(linger=0)
            self._follower = self._io = None


@plugin("routing_strategy", "kv_aware_recent")
def create_recent(ctx: StrategyContext) -> KvAwareRecent:
    params: Any = build_params(RecentParams, ctx.params, "kv_aware_recent")
    return KvAwareRecent(params, ctx.rng, ctx.clock)
