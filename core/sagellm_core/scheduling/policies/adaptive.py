"""``adaptive``: switch among the other policies from live signals, leading ones first.

The seeds' mapping: under load put SLOs first, when idle save cost. Load is read from *leading*
signals, so the switch happens while requests can still meet their objectives, not after
attainment has fallen:

- ``slo_aware`` (pressure): requests wait for slots and the queue grows (depth rose since the
  last look, or depth >= ``pressure_enter_depth``), or the predicted wait of a new request
  (queue depth × service time / slots + the best instance's predicted TTFT) exceeds
  ``pressure_objective_share`` of the tightest TTFT objective seen recently; or, lagging, SLO
  attainment < ``slo_enter_attainment``. Stays while anything waits or attainment <
  ``slo_exit_attainment``.
- ``priority`` (overload without objectives): depth >= ``overload_enter_depth`` and no queued
  request carried a TTFT or deadline objective recently — priority bands are all there is to
  protect; stays while depth > ``overload_exit_depth``.
- ``cost_optimized`` (idle): utilisation <= ``idle_enter_utilisation`` with an empty queue;
  stays while utilisation < ``idle_exit_utilisation``.
- ``fifo`` otherwise.

Escalating (to ``slo_aware`` or ``priority``) happens at once; stepping down needs
``min_dwell_s`` in the current mode. Ordering, placement and shedding are the active policy's;
``active``, ``reason`` and ``since`` say which one and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sagellm_core.scheduling.base import GENERAL, OrderKey, Placement, SchedulingPolicy, Shed
from sagellm_core.scheduling.predictor import TtftPredictor
from sagellm_core.scheduling.view import ClusterView, QueueItem, Signals

ESCALATIONS = ("slo_aware", "priority")


@dataclass(frozen=True, slots=True)
class AdaptiveConfig:
    pressure_enter_depth: int = 4
    pressure_objective_share: float = 0.5
    objective_memory_s: float = 60.0
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
        if self.pressure_enter_depth < 1:
            raise ValueError("pressure_enter_depth must be >= 1")
        if self.pressure_objective_share <= 0:
            raise ValueError("pressure_objective_share must be > 0")


@dataclass(frozen=True, slots=True)
class Leading:
    """What the queue is about to do: did it grow since the last look, how long would a new
    request wait for its first token, and the tightest objective seen (None: none recently)."""

    grew: bool = False
    predicted_wait_s: float = 0.0
    tightest_objective_s: float | None = None


def predicted_wait_s(view: ClusterView, predictor: TtftPredictor) -> float:
    """Seconds until a request queued now gets its first token: the queue ahead drains at
    ``slots / service_s`` requests per second, then the best instance's TTFT."""
    instances = view.instances
    if not instances:
        return 0.0
    slots = sum(i.max_concurrency for i in instances) or 1
    queue = view.signals.queue_depth * predictor.service_s / slots
    return queue + min(predictor.predict(i, 0) for i in instances)


def _pressure(cfg: AdaptiveConfig, s: Signals, lead: Leading) -> str | None:
    """Why the pool is under pressure, or None."""
    if s.queue_depth >= cfg.pressure_enter_depth:
        return f"queue depth {s.queue_depth} >= {cfg.pressure_enter_depth}"
    if s.queue_depth > 0 and lead.grew:
        return f"queue growing (depth {s.queue_depth})"
    objective = lead.tightest_objective_s
    if objective is not None and lead.predicted_wait_s > cfg.pressure_objective_share * objective:
        return (
            f"predicted wait {lead.predicted_wait_s:.3f} s > {cfg.pressure_objective_share:g} × "
            f"tightest objective {objective:.3f} s"
        )
    att = s.slo_attainment
    if att is not None and att < cfg.slo_enter_attainment:
        return f"SLO attainment {att:.3f} < {cfg.slo_enter_attainment}"
    return None


def _wanted(cfg: AdaptiveConfig, s: Signals, active: str, lead: Leading) -> tuple[str, str]:
    """The mode the signals ask for, with the reason; ``active`` uses its stay threshold."""
    if lead.tightest_objective_s is None:
        if active == "priority" and s.queue_depth > cfg.overload_exit_depth:
            return "priority", f"queue depth {s.queue_depth} still > {cfg.overload_exit_depth}"
        if s.queue_depth >= cfg.overload_enter_depth:
            return "priority", f"queue depth {s.queue_depth} >= {cfg.overload_enter_depth}"
    why = _pressure(cfg, s, lead)
    if why is not None:
        return "slo_aware", why
    att = s.slo_attainment
    if active == "slo_aware":
        if s.queue_depth > 0:
            return "slo_aware", f"{s.queue_depth} still waiting"
        if att is not None and att < cfg.slo_exit_attainment:
            return "slo_aware", f"SLO attainment {att:.3f} still < {cfg.slo_exit_attainment}"
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
    capabilities = GENERAL  # observes the view before every decision, also when idle

    def __init__(
        self,
        policies: Mapping[str, SchedulingPolicy],
        config: AdaptiveConfig | None = None,
        *,
        start: str = "fifo",
        now: float = 0.0,
        predictor: TtftPredictor | None = None,
    ) -> None:
        missing = {"fifo", "priority", "slo_aware", "cost_optimized"} - set(policies)
        if missing:
            raise ValueError(f"adaptive needs the policies {sorted(missing)}")
        self._policies = dict(policies)
        self.config = config or AdaptiveConfig()
        self.predictor = predictor or TtftPredictor()
        self.active = start
        self.reason = "initial policy"
        self.since = now
        self._last_depth = 0
        self._objective: tuple[float, float] | None = None  # (seconds, seen at)

    @property
    def current(self) -> SchedulingPolicy:
        return self._policies[self.active]

    def _note(self, item: QueueItem, now: float) -> None:
        """Remember the tightest TTFT objective (or deadline) of the traffic being ranked."""
        meta = item.meta
        objective_ms = meta.slo_ttft_ms if meta.slo_ttft_ms is not None else meta.slo_deadline_ms
        if objective_ms is None:
            return
        seconds = objective_ms / 1000.0
        kept = self._objective
        if kept is None or seconds <= kept[0] or now - kept[1] > self.config.objective_memory_s:
            self._objective = (seconds, now)

    def leading(self, view: ClusterView, now: float) -> Leading:
        kept = self._objective
        if kept is not None and now - kept[1] > self.config.objective_memory_s:
            kept = self._objective = None
        return Leading(
            grew=view.signals.queue_depth > self._last_depth,
            predicted_wait_s=predicted_wait_s(view, self.predictor),
            tightest_objective_s=kept[0] if kept else None,
        )

    def observe(self, view: ClusterView, now: float) -> None:
        lead = self.leading(view, now)
        self._last_depth = view.signals.queue_depth
        mode, why = _wanted(self.config, view.signals, self.active, lead)
        # escalate at once; step down only after min_dwell_s in the current mode (hysteresis
        # on top of the enter/stay thresholds)
        escalate = mode in ESCALATIONS and mode != self.active
        if mode != self.active and (escalate or now - self.since >= self.config.min_dwell_s):
            self.active, self.reason, self.since = mode, why, now
        self.current.observe(view, now)

    def status(self) -> dict[str, object]:
        return {"active": self.active, "reason": self.reason, "since": self.since}

    def order_key(self, item: QueueItem, view: ClusterView, now: float) -> OrderKey:
        self._note(item, now)
        return self.current.order_key(item, view, now)

    def placement(self, item: QueueItem, view: ClusterView, now: float) -> Placement:
        self._note(item, now)
        return self.current.placement(item, view, now)

    def should_shed(self, item: QueueItem, view: ClusterView, now: float) -> Shed | None:
        return self.current.should_shed(item, view, now)
