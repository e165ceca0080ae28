"""The scheduling-policy interface and the pure selection step shared by every policy.

A policy answers three questions about a queued item, given the cluster view and ``now``:

- ``order_key``: a tuple; smaller goes first. Items with equal keys are one *band*; inside a
  band the fair-share order decides (least recently served user first), then arrival order.
- ``placement``: which instances the item may use (cost_optimized narrows this; the others
  allow all). The admission queue decides *when* an item is admitted (a slot is free on an
  allowed instance); the router's routing strategy decides *which* allowed instance serves it.
- ``should_shed``: a ``Shed`` when the item should be rejected now instead of waiting.

``observe`` lets a stateful policy (adaptive) update itself from the view before selection.

A policy declares what it needs from the admission queue in ``capabilities`` (a
``Capabilities``); the queue skips the work a policy does not need. A policy without the
attribute, and a ``BasePolicy`` subclass that does not set it, gets ``GENERAL``: everything is
done for it, which is always correct and only slower.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sagellm_core.scheduling.fairshare import FairShare
from sagellm_core.scheduling.view import ClusterView, QueueItem

OrderKey = tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Placement:
    """The instances an item may run on (by name) and why; empty means none fits the policy."""

    instances: tuple[str, ...]
    reason: str = "any instance"


@dataclass(frozen=True, slots=True)
class Shed:
    """Reject instead of queueing. ``permanent``: retrying cannot help (no Retry-After)."""

    reason: str
    permanent: bool = False


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a policy needs; each False is a promise the admission queue relies on.

    - ``observes``: ``observe(view, now)`` must run before every decision, also while the
      queue is idle (the policy keeps state from the view, like ``adaptive``). False: the
      policy keeps no state from the view.
    - ``uses_view``: ``placement``, ``should_shed`` or ``order_key`` read the cluster view
      (instance load, predicted TTFT, signals). False: the placement is every instance, nothing
      is shed and the order does not depend on the view, so the queue admits from slot
      numbers alone, without building instance views.
    - ``arrival_order``: ``order_key`` orders by arrival (fifo-equivalent), so the queue takes
      waiters oldest first without ranking them.
    """

    observes: bool = True
    uses_view: bool = True
    arrival_order: bool = False


#: Everything done for the policy: the default for policies that declare nothing.
GENERAL = Capabilities()


def capabilities_of(policy: object) -> Capabilities:
    """``policy.capabilities``, or ``GENERAL`` when it declares none; ``TypeError`` when the
    attribute is something else."""
    caps = getattr(policy, "capabilities", GENERAL)
    if not isinstance(caps, Capabilities):
        raise TypeError(
            f"scheduling policy {getattr(policy, 'name', policy)!r}: capabilities must be a "
            f"sagellm_core.scheduling.base.Capabilities, got {type(caps).__name__}"
        )
    return caps


class SchedulingPolicy(Protocol):
    """A pluggable admission order (see the module docstring)."""

    @property
    def name(self) -> str: ...

    def observe(self, view: ClusterView, now: float) -> None: ...

    def order_key(self, item: QueueItem, view: ClusterView, now: float) -> OrderKey: ...

    def placement(self, item: QueueItem, view: ClusterView, now: float) -> Placement: ...

    def should_shed(self, item: QueueItem, view: ClusterView, now: float) -> Shed | None: ...


class BasePolicy:
    """Defaults: no state to observe, every instance allowed, never shed. ``capabilities``
    stays ``GENERAL`` for subclasses that override methods without declaring what they need."""

    name = "base"
    capabilities: Capabilities = GENERAL

    def observe(self, view: ClusterView, now: float) -> None:
        return None

    def placement(self, item: QueueItem, view: ClusterView, now: float) -> Placement:
        return Placement(view.names())

    def should_shed(self, item: QueueItem, view: ClusterView, now: float) -> Shed | None:
        return None


Fits = Callable[[Placement], bool]


def ranked(
    policy: SchedulingPolicy,
    items: Sequence[QueueItem],
    view: ClusterView,
    now: float,
    fair: FairShare | None = None,
) -> list[QueueItem]:
    """Items in the order the policy would admit them (key, then fair share, then arrival)."""

    def key(item: QueueItem) -> tuple[OrderKey, int, int]:
        turn = fair.last_turn(item.meta.user_id) if fair is not None else 0
        return policy.order_key(item, view, now), turn, item.seq

    return sorted(items, key=key)


def select_next(
    policy: SchedulingPolicy,
    items: Sequence[QueueItem],
    view: ClusterView,
    now: float,
    fits: Fits,
    fair: FairShare | None = None,
    *,
    in_order: bool = False,
) -> tuple[QueueItem, Placement] | None:
    """The best-ranked item whose placement currently ``fits`` (has a free slot), or None.

    Work-conserving: an item whose allowed instances are all busy does not block a lower-ranked
    item that can use a different, free instance. ``in_order``: ``items`` are already in
    admission order (a fifo-equivalent policy, or a single item), so they are not ranked.
    """
    ordered = items if in_order else ranked(policy, items, view, now, fair)
    for item in ordered:
        placement = policy.placement(item, view, now)
        if placement.instances and fits(placement):
            return item, placement
    return None
