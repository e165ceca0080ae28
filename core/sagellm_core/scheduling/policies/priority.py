"""``priority``: strict priority bands with aging against starvation.

Inputs: the item's priority band (0 = CRITICAL ... 4 = BACKGROUND) and how long it has waited.
Order key: ``(effective_band,)`` where ``effective_band = max(0, band - floor(waited /
aging_interval_s))`` — a waiting request climbs one band per aging interval, so a BACKGROUND
request waits at most ``4 × aging_interval_s`` before it competes with CRITICAL traffic. Ties
(same effective band) go to the least recently served user, then arrival order.
``aging_interval_s=None`` disables aging (pure strict priority).

Placement: requests of the top ``better_bands`` bands (CRITICAL, HIGH) may use only the better
instances — those whose predicted TTFT for the request (``TtftPredictor``: observed TTFT, load,
engine queue) is within ``better_tolerance`` of the best — so important traffic lands on the
fastest, least loaded engines; other bands may use every instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sagellm_core.scheduling.base import BasePolicy, Capabilities, OrderKey, Placement
from sagellm_core.scheduling.predictor import TtftPredictor
from sagellm_core.scheduling.view import ClusterView, QueueItem


@dataclass
class PriorityPolicy(BasePolicy):
    aging_interval_s: float | None = 30.0
    predictor: TtftPredictor = field(default_factory=TtftPredictor)
    better_bands: int = 2
    better_tolerance: float = 0.25
    name = "priority"
    capabilities = Capabilities(observes=False)  # places or orders by the view

    def __post_init__(self) -> None:
        if self.aging_interval_s is not None and self.aging_interval_s <= 0:
            raise ValueError(f"aging_interval_s must be > 0 or None, got {self.aging_interval_s}")
        if self.better_tolerance < 0:
            raise ValueError(f"better_tolerance must be >= 0, got {self.better_tolerance}")

    def placement(self, item: QueueItem, view: ClusterView, now: float) -> Placement:
        if item.meta.band >= self.better_bands or len(view.instances) < 2:
            return Placement(view.names())
        predicted = {i.name: self.predictor.predict(i, item.meta.prompt_tokens)
                     for i in view.instances}  # fmt: skip
        best = min(predicted.values())
        limit = best * (1.0 + self.better_tolerance) + 1e-9
        chosen = tuple(name for name, ttft in predicted.items() if ttft <= limit)
        tolerance = f"{self.better_tolerance:.0%}"
        why = f"{item.meta.priority}: predicted TTFT within {tolerance} of {best:.3f} s"
        return Placement(chosen, why)

    def effective_band(self, item: QueueItem, now: float) -> int:
        band = item.meta.band
        if self.aging_interval_s is None:
            return band
        return max(0, band - int(item.waited_s(now) // self.aging_interval_s))

    def order_key(self, item: QueueItem, view: ClusterView, now: float) -> OrderKey:
        return (float(self.effective_band(item, now)),)
