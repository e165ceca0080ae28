"""affinity: the same user/session goes to the same endpoint, spilling over when saturated.

Inputs: ``RouteInput.session_key`` (the ``x-session-id`` header, else the body's ``user``), the
candidates' URLs and ``LoadView.in_flight``. Score: rendezvous hash of (key, url) — the highest
scoring endpoint whose in-flight count is below ``max_in_flight`` wins; when all are saturated, or
the request carries no key, the least-loaded endpoint wins.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from sagellm_router.routing.base import (
    LoadView,
    RouteInput,
    StrategyContext,
    build_params,
    least_loaded,
)
from sagellm_router.routing.hashing import rendezvous_order
from sagellm_router.types import Endpoint


@dataclass(frozen=True)
class AffinityParams:
    max_in_flight: int | None = None  # default: limits.max_in_flight_per_endpoint


class Affinity:
    def __init__(self, max_in_flight: int, rng: random.Random) -> None:
        self._max = max_in_flight
        self._rng = rng

    @classmethod
    def create(cls, ctx: StrategyContext) -> Affinity:
        params = build_params(AffinityParams, ctx.params, "affinity")
        return cls(params.max_in_flight or ctx.max_in_flight_per_endpoint, ctx.rng)

    def pick(
        self, request: RouteInput, candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint:
        key = request.session_key
        if key is None:
            return least_loaded(candidates, loads, self._rng)
        for endpoint in rendezvous_order(key, candidates):
            if loads.in_flight(endpoint.url) < self._max:
                return endpoint
        return least_loaded(candidates, loads, self._rng)
