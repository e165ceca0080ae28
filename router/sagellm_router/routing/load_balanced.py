"""load_balanced: least outstanding work.

Inputs: ``LoadView.load`` per candidate (router in-flight count combined with scraped
``vllm:num_requests_running/waiting`` and KV-cache usage, see ``LoadModel``). Score: lower load is
better; ties are broken at random.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from sagellm_router.routing.base import LoadView, RouteInput, StrategyContext, least_loaded
from sagellm_router.types import Endpoint


class LoadBalanced:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    @classmethod
    def create(cls, ctx: StrategyContext) -> LoadBalanced:
        return cls(ctx.rng)

    def pick(
        self, request: RouteInput, candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint:
        return least_loaded(candidates, loads, self._rng)
