"""locality: prompt-prefix hashing with bounded load (CHWBL-style).

Inputs: the first ``prefix_chars`` characters of the prompt, the candidates' URLs and
``LoadView.in_flight``. Score: rendezvous hash of (prefix, url); the best-scoring endpoint whose
in-flight count stays within ``ceil(load_factor * (total_in_flight + 1) / n)`` wins. No state, so
several router replicas send the same prefix to the same engine without talking to each other,
while the bound keeps a hot prefix from overloading one engine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sagellm_router.routing.base import LoadView, RouteInput, StrategyContext, build_params
from sagellm_router.routing.hashing import rendezvous_order
from sagellm_router.types import Endpoint


@dataclass(frozen=True)
class LocalityParams:
    prefix_chars: int = 256
    load_factor: float = 1.25


class Locality:
    def __init__(self, params: LocalityParams) -> None:
        if params.prefix_chars <= 0 or params.load_factor < 1.0:
            raise ValueError("locality: prefix_chars must be > 0 and load_factor >= 1")
        self._params = params

    @classmethod
    def create(cls, ctx: StrategyContext) -> Locality:
        return cls(build_params(LocalityParams, ctx.params, "locality"))

    def pick(
        self, request: RouteInput, candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint:
        key = request.prompt_text[: self._params.prefix_chars]
        in_flight = {e.url: loads.in_flight(e.url) for e in candidates}
        capacity = math.ceil(
            self._params.load_factor * (sum(in_flight.values()) + 1) / len(candidates)
        )
        order = rendezvous_order(key, candidates)
        for endpoint in order:
            if in_flight[endpoint.url] + 1 <= capacity:
                return endpoint
        return order[0]
