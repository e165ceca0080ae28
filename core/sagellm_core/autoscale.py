"""The autoscaler's pure decision: per role, the replicas a demand signal asks for, and why.

Inputs: the role's current replica count, its demand (:class:`Signals`, summed over router
replicas by the caller), its bounds and policy, the recent recommendations (:class:`History`)
and the time. Output: a :class:`Decision` (replicas, reason, inputs) and the new history. No I/O,
no clock: the caller passes ``now`` in seconds.

Rules, in order:
1. The raw recommendation is ``ceil(demand / target)`` where demand is queued + in flight.
2. Scale from zero: demand while at 0 replicas asks for ``max(1, min)`` at once (a held
   request waits for it), whatever the windows say.
3. Scale to zero only after ``idle_seconds`` with no demand at all, and only when ``min`` is 0;
   before that an idle role keeps ``max(1, min)``.
4. Stabilization (as the HorizontalPodAutoscaler does it): scaling up follows the *lowest*
   recommendation of the last ``up_window_seconds``, scaling down the *highest* of the last
   ``down_window_seconds``, so a short spike or dip moves nothing.
5. Step limits: at most ``max_step_up`` replicas added and ``max_step_down`` removed per
   decision; then the result is clamped to ``[min, max]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sagellm_core.api.autoscaling import AutoscalingSpec, ScaleBounds


@dataclass(frozen=True)
class Signals:
    """Demand seen for one role: requests waiting for a slot and requests being served."""

    queued: float = 0.0
    in_flight: float = 0.0

    @property
    def demand(self) -> float:
        return self.queued + self.in_flight


@dataclass(frozen=True)
class Bounds:
    min: int = 1
    max: int = 1


@dataclass(frozen=True)
class ScalePolicy:
    target_per_replica: float = 4.0
    up_window_seconds: float = 0.0
    down_window_seconds: float = 300.0
    max_step_up: int = 4
    max_step_down: int = 1
    idle_seconds: float = 600.0


@dataclass(frozen=True)
class History:
    """Recommendations of the longest window, oldest first, and when demand was last seen."""

    recommendations: tuple[tuple[float, int], ...] = ()
    last_demand_at: float | None = None


@dataclass(frozen=True)
class Decision:
    replicas: int
    reason: str
    inputs: dict[str, float] = field(default_factory=dict)

    def changed(self, current: int) -> bool:
        return self.replicas != current


def raw_recommendation(signals: Signals, policy: ScalePolicy) -> int:
    return math.ceil(signals.demand / policy.target_per_replica)


def _remember(history: History, now: float, rec: int, demand: float, keep: float) -> History:
    recent = tuple((t, r) for t, r in history.recommendations if now - t <= keep)
    seen = now if demand > 0 else history.last_demand_at
    return History((*recent, (now, rec)), seen)


def _stabilized(history: History, now: float, current: int, policy: ScalePolicy) -> int:
    """Up: the lowest recommendation of the up window; down: the highest of the down window."""
    ups = [r for t, r in history.recommendations if now - t <= policy.up_window_seconds]
    downs = [r for t, r in history.recommendations if now - t <= policy.down_window_seconds]
    up, down = min(ups), max(downs)
    if up > current:
        return up
    if down < current:
        return down
    return current


def _floor(bounds: Bounds, history: History, now: float, policy: ScalePolicy) -> tuple[int, str]:
    """The lowest count allowed now: 0 only after the idle period with ``min`` 0."""
    if bounds.min > 0:
        return bounds.min, ""
    idle_since = history.last_demand_at
    if idle_since is not None and now - idle_since < policy.idle_seconds:
        return 1, f"no demand for {now - idle_since:.0f}s < idleSeconds {policy.idle_seconds:g}"
    return 0, ""


def decide(
    current: int,
    signals: Signals,
    bounds: Bounds,
    policy: ScalePolicy,
    history: History,
    now: float,
) -> tuple[Decision, History]:
    """The replicas for one role now, with the reason a user reads in status and Events."""
    rec = raw_recommendation(signals, policy)
    keep = max(policy.up_window_seconds, policy.down_window_seconds)
    history = _remember(history, now, rec, signals.demand, keep)
    inputs = {"queued": signals.queued, "inFlight": signals.in_flight, "current": current,
              "recommended": rec, "target": policy.target_per_replica}  # fmt: skip
    if current == 0 and signals.demand > 0:
        wanted = min(max(1, bounds.min, rec), bounds.max, policy.max_step_up)
        why = f"scale from zero: demand {signals.demand:g} while at 0 replicas"
        return Decision(wanted, why, inputs), history
    floor, held = _floor(bounds, history, now, policy)
    stable = _stabilized(history, now, current, policy)
    stepped = max(min(stable, current + policy.max_step_up), current - policy.max_step_down)
    wanted = min(max(stepped, floor), bounds.max)
    return Decision(wanted, _reason(current, wanted, rec, bounds, held, signals), inputs), history


def _reason(
    current: int, wanted: int, rec: int, bounds: Bounds, held: str, signals: Signals
) -> str:
    demand = (f"demand {signals.demand:g} (queued {signals.queued:g}, in flight "
              f"{signals.in_flight:g}) asks for {rec}")  # fmt: skip
    if wanted != current:
        verb = "scale up" if wanted > current else "scale down"
        return f"{verb} {current} -> {wanted}: {demand}"
    if rec > current and current >= bounds.max:
        return f"hold {current}: {demand}, at max {bounds.max}"
    if rec < current and held:
        return f"hold {current}: {demand}, {held}"
    if rec < current and current <= bounds.min:
        return f"hold {current}: {demand}, at min {bounds.min}"
    if rec != current:
        return f"hold {current}: {demand}, inside the stabilization window"
    return f"hold {current}: {demand}"


def with_bounds(bounds: Bounds, current: int) -> int:
    """A replica count brought inside ``bounds`` (what the autoscaler starts from)."""
    return min(max(current, bounds.min), bounds.max)


def policy_of(spec: AutoscalingSpec) -> ScalePolicy:
    """The decision's policy from a pool's ``spec.autoscaling`` (every field maps here)."""
    return ScalePolicy(
        target_per_replica=float(spec.target_queue_depth_per_replica),
        up_window_seconds=float(spec.scale_up_window_seconds),
        down_window_seconds=float(spec.scale_down_window_seconds),
        max_step_up=spec.max_scale_up_step,
        max_step_down=spec.max_scale_down_step,
        idle_seconds=float(spec.scale_to_zero_after_seconds),
    )


def bounds_of(bounds: ScaleBounds) -> Bounds:
    return Bounds(min=bounds.min_replicas, max=bounds.max_replicas)


__all__ = [
    "Bounds",
    "Decision",
    "History",
    "ScalePolicy",
    "Signals",
    "bounds_of",
    "decide",
    "policy_of",
    "raw_recommendation",
    "with_bounds",
]
