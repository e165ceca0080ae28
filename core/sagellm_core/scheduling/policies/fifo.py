"""``fifo``: admit in arrival order.

Inputs: the item's queue sequence number only. Order key: ``(seq,)`` — strictly first come,
first served; no priorities, no fair share, every instance allowed, never sheds.
"""

from __future__ import annotations

from sagellm_core.scheduling.base import BasePolicy, Capabilities, OrderKey
from sagellm_core.scheduling.view import ClusterView, QueueItem


class FifoPolicy(BasePolicy):
    name = "fifo"
    capabilities = Capabilities(observes=False, uses_view=False, arrival_order=True)

    def order_key(self, item: QueueItem, view: ClusterView, now: float) -> OrderKey:
        return (float(item.seq),)
