"""random: a uniformly random candidate.

Inputs: the candidate list and the seeded RNG. Score: none. Stateless and replica-safe; the
baseline every other strategy should beat.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from sagellm_router.routing.base import LoadView, RouteInput, StrategyContext
from sagellm_router.types import Endpoint


class RandomPick:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    @classmethod
    def create(cls, ctx: StrategyContext) -> RandomPick:
        return cls(ctx.rng)

    def pick(
        self, request: RouteInput, candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint:
        return self._rng.choice(candidates)
