"""``kv_aware_events``: a benchmark-only variant of ``kv_aware`` that trusts the engines' KV
events alone (``recent_s: 0``: this router's recent picks do not bridge the events' lag), to
measure what the bridge adds with one router and with several.

The router app feeds the KV index only of pools routed by the built-in ``kv_aware``
(``sagellm_router.kv.feeds``), so this plugin follows the engines itself: on its first pick it
starts a ``KvEventFollower`` for the candidates (its own HTTP session and ZMQ context).
Loaded as a plugin by the routing benchmark (``PLUGINS``); not a built-in.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sagellm_core.plugins import plugin
from sagellm_router.routing.base import LoadView, RouteInput, StrategyContext, build_params
from sagellm_router.routing.kv_aware import KvAware, KvAwareParams
from sagellm_router.types import Endpoint

PLUGINS = {"kv_aware_events": "sagellm_router.bench.kv_variants:create_events_only"}


class KvAwareEvents(KvAware):
    def __init__(self, params: KvAwareParams, rng: random.Random, follow: bool = True) -> None:
        super().__init__(replace(params, recent_s=0.0), rng)
        self._follow = follow
        self._follower: Any = None
        self._io: tuple[Any, Any] | None = None
        self._tracked: set[str] = set()

    def pick(
        self, request: RouteInput, candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint:
        self._track(candidates)
        return super().pick(request, candidates, loads)

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


@plugin("routing_strategy", "kv_aware_events")
def create_events_only(ctx: StrategyContext) -> KvAwareEvents:
    return KvAwareEvents(build_params(KvAwareParams, ctx.params, "kv_aware_events"), ctx.rng)
