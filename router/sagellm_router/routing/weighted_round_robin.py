"""weighted_round_robin: smooth weighted round robin (the nginx algorithm).

Inputs: each candidate's ``weight`` (from config or endpoint capacity). Score: every pick adds each
candidate's weight to its running credit, picks the highest credit and subtracts the total
weight from the winner. Over any window of ``sum(weights)`` picks each endpoint gets its share, and
picks are interleaved rather than bursty.
"""

from __future__ import annotations

from collections.abc import Sequence

from sagellm_router.routing.base import LoadView, RouteInput, StrategyContext
from sagellm_router.types import Endpoint


class WeightedRoundRobin:
    def __init__(self) -> None:
        self._credit: dict[str, float] = {}

    @classmethod
    def create(cls, ctx: StrategyContext) -> WeightedRoundRobin:
        return cls()

    def pick(
        self, request: RouteInput, candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint:
        total = 0.0
        best: Endpoint | None = None
        best_credit = float("-inf")
        for endpoint in candidates:
            credit = self._credit.get(endpoint.url, 0.0) + endpoint.weight
            self._credit[endpoint.url] = credit
            total += endpoint.weight
            if credit > best_credit:
                best, best_credit = endpoint, credit
        assert best is not None
        self._credit[best.url] = best_credit - total
        if len(self._credit) > 2 * len(candidates):
            live = {e.url for e in candidates}
            self._credit = {u: c for u, c in self._credit.items() if u in live}
        return best
