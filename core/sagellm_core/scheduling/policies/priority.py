"""``priority``: strict priority bands with aging against starvation.

Inputs: the item's priority band (0 = CRITICAL ... 4 = BACKGROUND) and how long it has waited.
Order key: ``(effective_band,)`` where ``effective_band = max(0, band - floor(waited /
aging_interval_s))`` — a waiting request climbs one band per aging interval, so a BACKGROUND
request waits at most ``4 × aging_interval_s`` before it competes with CRITICAL traffic. Ties
(same effective band) go to the least recently served user, then arrival order.
``aging_interval_s=None`` disables aging (pure strict priority).
"""

from __future__ import annotations

from dataclasses import dataclass

from sagellm_core.scheduling.base import BasePolicy, OrderKey
from sagellm_core.scheduling.view import ClusterView, QueueItem


@dataclass
class PriorityPolicy(BasePolicy):
    aging_interval_s: float | None = 30.0
    name = "priority"

    def __post_init__(self) -> None:
        if self.aging_interval_s is not None and self.aging_interval_s <= 0:
            raise ValueError(f"aging_interval_s must be > 0 or None, got {self.aging_interval_s}")

    def effective_band(self, item: QueueItem, now: float) -> int:
        band = item.meta.band
        if self.aging_interval_s is None:
            return band
        return max(0, band - int(item.waited_s(now) // self.aging_interval_s))

    def order_key(self, item: QueueItem, view: ClusterView, now: float) -> OrderKey:
        return (float(self.effective_band(item, now)),)
