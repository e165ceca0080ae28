"""``cost_optimized``: the cheapest instance that is still predicted to meet the SLO.

Inputs: per instance ``cost_per_gpu_hour``, ``gpus``, token throughput ``tokens_per_s`` (or
``default_tokens_per_s``) and load (for ``TtftPredictor``); per request the expected tokens
(prompt + max_tokens), TTFT/deadline objectives, ``cost_budget`` and ``parallelism_hint``.
Score: ``cost = cost_per_gpu_hour × gpus / 3600 / tokens_per_s × expected_tokens`` — the
request's share of the instance's GPU time. Placement, in order:

1. with a parallelism hint, keep instances with ``gpus >= hint`` when any exist;
2. keep instances whose cost is within ``cost_budget`` — if none, shed (permanent: 422);
3. of those, keep the ones predicted to meet the SLO; if none does, keep them all;
4. allow the cheapest (within ``tie_tolerance``); the routing strategy picks among them.

So the cheaper pool wins while both meet the SLO, and the faster one when only it does.
Order key: ``(band,)`` — priority bands without aging, fair share inside a band.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sagellm_core.scheduling.base import BasePolicy, Capabilities, OrderKey, Placement, Shed
from sagellm_core.scheduling.metadata import RequestMetadata
from sagellm_core.scheduling.predictor import TtftPredictor
from sagellm_core.scheduling.view import ClusterView, InstanceView, QueueItem


@dataclass
class CostOptimizedPolicy(BasePolicy):
    predictor: TtftPredictor = field(default_factory=TtftPredictor)
    default_tokens_per_s: float = 2000.0
    tie_tolerance: float = 0.01
    name = "cost_optimized"
    capabilities = Capabilities(observes=False)  # places or orders by the view

    def request_cost(self, inst: InstanceView, meta: RequestMetadata) -> float:
        tokens_per_s = inst.tokens_per_s or self.default_tokens_per_s
        per_token = inst.cost_per_gpu_hour * inst.gpus / 3600.0 / tokens_per_s
        return per_token * meta.expected_tokens

    def meets_slo(self, inst: InstanceView, meta: RequestMetadata, now: float) -> bool:
        ttft = self.predictor.predict(inst, meta.prompt_tokens)
        if meta.ttft_due_s is not None and now + ttft > meta.ttft_due_s:
            return False
        if meta.deadline_s is not None:
            done = self.predictor.completion_s(inst, meta.prompt_tokens, meta.output_tokens)
            return now + done <= meta.deadline_s
        return True

    def order_key(self, item: QueueItem, view: ClusterView, now: float) -> OrderKey:
        return (float(item.meta.band),)

    def choose(self, meta: RequestMetadata, view: ClusterView, now: float) -> Placement:
        """The allowed instances and why (empty when nothing fits the budget)."""
        options = list(view.instances)
        if meta.parallelism_hint is not None:
            options = [i for i in options if i.gpus >= meta.parallelism_hint] or options
        costs = {i.name: self.request_cost(i, meta) for i in options}
        affordable = [i for i in options if _within(costs[i.name], meta.cost_budget)]
        if not affordable:
            cheapest = min(costs.values(), default=0.0)
            return Placement(
                (), f"cheapest option costs {cheapest:.6g} > budget {meta.cost_budget}"
            )
        meeting = [i for i in affordable if self.meets_slo(i, meta, now)]
        pool = meeting or affordable
        best = min(costs[i.name] for i in pool)
        limit = best * (1.0 + self.tie_tolerance) + 1e-12
        chosen = tuple(i.name for i in pool if costs[i.name] <= limit)
        if meeting:
            why = f"cheapest predicted to meet the SLO ({best:.6g} per request)"
        else:
            why = f"none predicted to meet the SLO; cheapest ({best:.6g} per request)"
        return Placement(chosen, why)

    def placement(self, item: QueueItem, view: ClusterView, now: float) -> Placement:
        return self.choose(item.meta, view, now)

    def should_shed(self, item: QueueItem, view: ClusterView, now: float) -> Shed | None:
        if not view.instances or item.meta.cost_budget is None:
            return None
        placement = self.choose(item.meta, view, now)
        return None if placement.instances else Shed(placement.reason, permanent=True)


def _within(cost: float, budget: float | None) -> bool:
    return budget is None or cost <= budget
