"""round_robin: cycle through the candidates in order.

Inputs: the candidate list only. Score: none; the n-th request of a pool goes to candidate
``n mod len(candidates)``. Even spread for uniform requests; ignores load.
"""

from __future__ import annotations

from collections.abc import Sequence

from sagellm_router.routing.base import LoadView, RouteInput, StrategyContext
from sagellm_router.types import Endpoint


class RoundRobin:
    def __init__(self) -> None:
        self._next = 0

    @classmethod
    def create(cls, ctx: StrategyContext) -> RoundRobin:
        return cls()

    def pick(
        self, request: RouteInput, candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint:
        index = self._next % len(candidates)
        self._next = index + 1
        return candidates[index]
