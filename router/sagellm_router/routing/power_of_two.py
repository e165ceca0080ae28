"""power_of_two: sample two distinct candidates at random, keep the less loaded.

Inputs: seeded RNG and ``LoadView.load``. Score: lower load of the two sampled (the first sampled
wins ties). Near least-load balance with O(1) work and less herding on stale load numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

from sagellm_router.routing.base import LoadView, RouteInput, Seeded
from sagellm_router.types import Endpoint


class PowerOfTwo(Seeded):
    def pick(
        self, request: RouteInput, candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint:
        if len(candidates) == 1:
            return candidates[0]
        first, second = self._rng.sample(range(len(candidates)), 2)
        a, b = candidates[first], candidates[second]
        return b if loads.load(b.url) < loads.load(a.url) else a
