"""load_balanced: least outstanding work.

Inputs: ``LoadView.load`` per candidate (router in-flight count combined with scraped
``vllm:num_requests_running/waiting`` and KV-cache usage, see ``LoadModel``). Score: lower load is
better; ties are broken at random.
"""

from __future__ import annotations

from collections.abc import Sequence

from sagellm_router.routing.base import LoadView, RouteInput, Seeded, least_loaded
from sagellm_router.types import Endpoint


class LoadBalanced(Seeded):
    def pick(
        self, request: RouteInput, candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint:
        return least_loaded(candidates, loads, self._rng)
