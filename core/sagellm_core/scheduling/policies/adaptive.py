"""``adaptive``: switch among the other policies from live signals, with hysteresis.

Inputs: ``Signals`` (queue depth, SLO attainment over a window, utilisation) and ``now``.
Modes, highest precedence first (enter / stay thresholds from ``AdaptiveConfig``):

- ``priority`` (overload): queue depth >= ``overload_enter_depth``; stays while depth >
  ``overload_exit_depth`` — protect the important traffic when work piles up;
- ``slo_aware`` (SLO trouble): attainment < ``slo_enter_attainment``; stays while attainment <
  ``slo_exit_attainment`` — reorder by slack to recover deadlines;
- ``cost_optimized`` (idle): utilisation <= ``idle_enter_utilisation`` with an empty queue;
  stays while utilisation < ``idle_exit_utilisation`` — spare capacity, so save money;
- ``fifo`` otherwise.

A switch also needs ``min_dwell_s`` since the previous one. Ordering, placement and shedding
are the active policy's; ``active``, ``reason`` and ``since`` say which one and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sagellm_core.scheduling.base import OrderKey, Placement, SchedulingPolicy, Shed
from sagellm_core.scheduling.view import ClusterView, QueueItem, Signals


@dataclass(frozen=True, slots=True)
class AdaptiveConfig:
    overload_enter_depth: int = 64
    overload_exit_depth: int = 16
    slo_enter_attainment: float = 0.90
    slo_exit_attainment: float = 0.97
    idle_enter_utilisation: float = 0.30
    idle_exit_utilisation: float = 0.60
    min_dwell_s: float = 30.0

    def __post_init__(self) -> None:
        if self.overload_exit_depth >= self.overload_enter_depth:
            raise ValueError("overload_exit_depth must be below overload_enter_depth")
        if self.slo_exit_attainment <= self.slo_enter_attainment:
            raise ValueError("slo_exit_attainment must be above slo_enter_attainment")
        if self.idle_exit_utilisation <= self.idle_enter_utilisation:
            raise ValueError("idle_exit_utilisation must be above idle_enter_utilisation")


def _wanted(cfg: AdaptiveConfig, s: Signals, active: str) -> tuple[str, str]:
    """The mode the signals ask for, with the reason; ``active`` uses its stay threshold."""
    if active == "priority" and s.queue_depth > cfg.overload_exit_depth:
        return "priority", f"queue depth {s.queue_depth} still > {cfg.overload_exit_depth}"
    if s.queue_depth >= cfg.overload_enter_depth:
        return "priority", f"queue depth {s.queue_depth} >= {cfg.overload_enter_depth}"
    att = s.slo_attainment
    if att is not None:
        if active == "slo_aware" and att < cfg.slo_exit_attainment:
            return "slo_aware", f"SLO attainment {att:.3f} still < {cfg.slo_exit_attainment}"
        if att < cfg.slo_enter_attainment:
            return "slo_aware", f"SLO attainment {att:.3f} < {cfg.slo_enter_attainment}"
    util = s.utilisation
    if active == "cost_optimized" and util < cfg.idle_exit_utilisation:
        return "cost_optimized", f"utilisation {util:.2f} still < {cfg.idle_exit_utilisation}"
    if util <= cfg.idle_enter_utilisation and s.queue_depth == 0:
        return (
            "cost_optimized",
            f"utilisation {util:.2f} <= {cfg.idle_enter_utilisation}, queue empty",
        )
    return "fifo", f"no trigger (depth {s.queue_depth}, attainment {att}, utilisation {util:.2f})"


class AdaptivePolicy:
    name = "adaptive"

    def __init__(
        self,
        policies: Mapping[str, SchedulingPolicy],
        config: AdaptiveConfig | None = None,
        *,
        start: str = "fifo",
        now: float = 0.0,
    ) -> None:
        missing = {"fifo", "priority", "slo_aware", "cost_optimized"} - set(policies)
        if missing:
            raise ValueError(f"adaptive needs the policies {sorted(missing)}")
        self._policies = dict(policies)
        self.config = config or AdaptiveConfig()
        self.active = start
        self.reason = "initial policy"
        self.since = now

    @property
    def current(self) -> SchedulingPolicy:
        return self._policies[self.active]

    def observe(self, view: ClusterView, now: float) -> None:
        mode, why = _wanted(self.config, view.signals, self.active)
        # hysteresis: besides the enter/stay thresholds, dwell min_dwell_s in each mode
        if mode != self.active and now - self.since >= self.config.min_dwell_s:
            self.active, self.reason, self.since = mode, why, now
        self.current.observe(view, now)

    def status(self) -> dict[str, object]:
        return {"active": self.active, "reason": self.reason, "since": self.since}

    def order_key(self, item: QueueItem, view: ClusterView, now: float) -> OrderKey:
        return self.current.order_key(item, view, now)

    def placement(self, item: QueueItem, view: ClusterView, now: float) -> Placement:
        return self.current.placement(item, view, now)

    def should_shed(self, item: QueueItem, view: ClusterView, now: float) -> Shed | None:
        return self.current.should_shed(item, view, now)
