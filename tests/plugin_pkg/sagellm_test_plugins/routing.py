"""``last_candidate``: always the last candidate (by instance name).

Inputs: the candidate list. Score: none; the candidate whose ``instance`` sorts last wins.
Deterministic, so tests can tell that this plugin, not a built-in, chose.
"""

from __future__ import annotations

from collections.abc import Sequence

from sagellm_router.routing.base import LoadView, RouteInput, StrategyContext
from sagellm_router.types import Endpoint


class LastCandidate:
    def pick(
        self, request: RouteInput, candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint:
        return max(candidates, key=lambda e: e.instance)


def create(ctx: StrategyContext) -> LastCandidate:
    return LastCandidate()
