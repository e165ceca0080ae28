"""``pin_first``: fifo order, but only the first instance (by name) may serve.

Inputs: the queue sequence number and the instance names. Order key: ``(seq,)``; placement:
the instance whose name sorts first. Never sheds. Capabilities: keeps no state from the view
and admits in arrival order, but its placement reads the instance names (``uses_view``).
"""

from __future__ import annotations

from sagellm_core.scheduling.base import BasePolicy, Capabilities, OrderKey, Placement
from sagellm_core.scheduling.registry import PolicySettings
from sagellm_core.scheduling.view import ClusterView, QueueItem


class PinFirst(BasePolicy):
    name = "pin_first"
    capabilities = Capabilities(observes=False, uses_view=True, arrival_order=True)

    def order_key(self, item: QueueItem, view: ClusterView, now: float) -> OrderKey:
        return (float(item.seq),)

    def placement(self, item: QueueItem, view: ClusterView, now: float) -> Placement:
        names = sorted(view.names())
        return Placement(tuple(names[:1]), "pinned to the first instance")


def create(settings: PolicySettings) -> PinFirst:
    return PinFirst()
