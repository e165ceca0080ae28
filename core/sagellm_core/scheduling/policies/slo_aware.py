"""``slo_aware``: earliest deadline first, made urgent by predicted TTFT (least slack first).

Inputs: the item's TTFT due time and/or end-to-end deadline, its prompt and output token
counts, and per-instance load (``TtftPredictor``: observed TTFT, in-flight, engine queue).
Score: ``slack = due - now - predicted`` using the best instance's prediction (for a deadline,
predicted completion = TTFT + output tokens × decode time per token; with both objectives the
smaller slack counts). Order key: ``(0, slack)`` — least slack first — and ``(1, enqueued)``
for requests without any SLO, which follow in arrival order.
Shedding (only with ``shed=True``): a request whose slack is below ``-shed_grace_s`` can no
longer meet its SLO and is rejected rather than queued.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sagellm_core.scheduling.base import BasePolicy, Capabilities, OrderKey, Shed
from sagellm_core.scheduling.predictor import TtftPredictor
from sagellm_core.scheduling.view import ClusterView, InstanceView, QueueItem

_NOMINAL = (InstanceView("nominal"),)


@dataclass
class SloAwarePolicy(BasePolicy):
    predictor: TtftPredictor = field(default_factory=TtftPredictor)
    shed: bool = False
    shed_grace_s: float = 0.0
    name = "slo_aware"
    capabilities = Capabilities(observes=False)  # places or orders by the view

    def slack_s(self, item: QueueItem, view: ClusterView, now: float) -> float | None:
        """Seconds to spare if started now on the best instance; None without an SLO."""
        meta = item.meta
        if not meta.has_slo:
            return None
        instances = view.instances or _NOMINAL
        ttft = min(self.predictor.predict(i, meta.prompt_tokens) for i in instances)
        slacks = []
        if meta.ttft_due_s is not None:
            slacks.append(meta.ttft_due_s - now - ttft)
        if meta.deadline_s is not None:
            decode = meta.output_tokens * self.predictor.decode_s_per_token
            slacks.append(meta.deadline_s - now - ttft - decode)
        return min(slacks)

    def order_key(self, item: QueueItem, view: ClusterView, now: float) -> OrderKey:
        slack = self.slack_s(item, view, now)
        if slack is None:
            return (1.0, item.enqueued_s)
        return (0.0, slack)

    def should_shed(self, item: QueueItem, view: ClusterView, now: float) -> Shed | None:
        if not self.shed:
            return None
        slack = self.slack_s(item, view, now)
        if slack is None or slack >= -self.shed_grace_s:
            return None
        return Shed(f"the request can no longer meet its SLO (predicted {-slack:.3f} s late)")
