"""random: a uniformly random candidate.

Inputs: the candidate list and the seeded RNG. Score: none. Stateless and replica-safe; the
baseline every other strategy should beat.
"""

from __future__ import annotations

from collections.abc import Sequence

from sagellm_router.routing.base import LoadView, RouteInput, Seeded
from sagellm_router.types import Endpoint


class RandomPick(Seeded):
    def pick(
        self, request: RouteInput, candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint:
        return self._rng.choice(candidates)
