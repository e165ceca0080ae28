"""The autoscaler's pure decision, table-driven: signals × bounds × windows → replicas, reason."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from sagellm_core.autoscale import Bounds, History, ScalePolicy, Signals, decide

FAST = ScalePolicy(target_per_replica=4, up_window_seconds=0, down_window_seconds=0,
                   max_step_up=10, max_step_down=10, idle_seconds=60)  # fmt: skip


@dataclass
class Case:
    current: int
    signals: Signals
    bounds: Bounds
    replicas: int
    reason: str
    policy: ScalePolicy = FAST
    history: History = field(default_factory=History)
    now: float = 1000.0


CASES = {
    "demand fits current": Case(2, Signals(queued=0, in_flight=8), Bounds(1, 5), 2, "hold 2"),
    "queue grows: up": Case(2, Signals(queued=8, in_flight=8), Bounds(1, 5), 4, "scale up 2 -> 4"),
    "up capped by max": Case(2, Signals(queued=40), Bounds(1, 5), 5, "scale up 2 -> 5"),
    "at max holds": Case(5, Signals(queued=40), Bounds(1, 5), 5, "at max 5"),
    "up limited by step": Case(
        1, Signals(queued=40), Bounds(1, 20), 3, "scale up 1 -> 3",
        policy=ScalePolicy(target_per_replica=4, max_step_up=2, down_window_seconds=0),
    ),
    "down to need": Case(4, Signals(in_flight=4), Bounds(1, 5), 1, "scale down 4 -> 1"),
    "down limited by step": Case(
        4, Signals(in_flight=4), Bounds(1, 5), 3, "scale down 4 -> 3",
        policy=ScalePolicy(target_per_replica=4, max_step_down=1, down_window_seconds=0),
    ),
    "at min holds": Case(2, Signals(), Bounds(2, 5), 2, "at min 2"),
    "from zero on demand": Case(0, Signals(queued=1), Bounds(0, 5), 1, "scale from zero"),
    "from zero asks for demand": Case(0, Signals(queued=9), Bounds(0, 5), 3, "scale from zero"),
    "from zero respects min": Case(0, Signals(queued=1), Bounds(2, 5), 2, "scale from zero"),
    "zero stays zero idle": Case(0, Signals(), Bounds(0, 5), 0, "hold 0"),
    "idle but not long enough": Case(
        1, Signals(), Bounds(0, 5), 1, "no demand for 30s < idleSeconds 60",
        history=History(last_demand_at=970.0),
    ),
    "idle long enough: to zero": Case(
        1, Signals(), Bounds(0, 5), 0, "scale down 1 -> 0", history=History(last_demand_at=900.0)
    ),
    "min 1 never reaches zero": Case(
        1, Signals(), Bounds(1, 5), 1, "at min 1", history=History(last_demand_at=0.0)
    ),
    "down window keeps the peak": Case(
        4, Signals(in_flight=4), Bounds(1, 5), 4, "inside the stabilization window",
        policy=ScalePolicy(target_per_replica=4, down_window_seconds=300),
        history=History(((800.0, 4), (900.0, 3))),
    ),
    "down window: the highest of the window": Case(
        4, Signals(in_flight=4), Bounds(1, 5), 3, "scale down 4 -> 3",
        policy=ScalePolicy(target_per_replica=4, down_window_seconds=300, max_step_down=4),
        history=History(((600.0, 4), (900.0, 3))),
    ),
    "up window ignores a spike": Case(
        2, Signals(queued=30), Bounds(1, 10), 2, "inside the stabilization window",
        policy=ScalePolicy(target_per_replica=4, up_window_seconds=60, down_window_seconds=60),
        history=History(((950.0, 2),)),
    ),
    "up window: sustained demand scales": Case(
        2, Signals(queued=30), Bounds(1, 10), 6, "scale up 2 -> 6",
        policy=ScalePolicy(target_per_replica=4, up_window_seconds=60, down_window_seconds=60),
        history=History(((950.0, 8), (970.0, 9))),
    ),
    "out of bounds is corrected": Case(7, Signals(in_flight=28), Bounds(1, 5), 5, "scale down"),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_decision(case: Case) -> None:
    decision, _ = decide(case.current, case.signals, case.bounds, case.policy, case.history,
                         case.now)  # fmt: skip
    assert decision.replicas == case.replicas, decision.reason
    assert case.reason in decision.reason
    assert decision.inputs["queued"] == case.signals.queued


def test_steady_load_does_not_flap() -> None:
    """A load that hovers across a boundary (demand 11..13, target 4: 3 or 4 replicas) settles
    once and stays: up follows the lowest recent need, down the highest."""
    policy = ScalePolicy(target_per_replica=4, up_window_seconds=30, down_window_seconds=120)
    history, current, changes = History(), 2, 0
    for step in range(120):
        demand = (11, 13, 12)[step % 3]
        decision, history = decide(current, Signals(in_flight=demand), Bounds(1, 10), policy,
                                   history, step * 5.0)  # fmt: skip
        changes += decision.replicas != current
        current = decision.replicas
    assert changes <= 1, changes
    assert current == 3


def test_history_keeps_only_the_longest_window() -> None:
    policy = ScalePolicy(up_window_seconds=10, down_window_seconds=30)
    history = History()
    for t in range(0, 100, 5):
        _, history = decide(1, Signals(in_flight=1), Bounds(1, 4), policy, history, float(t))
    assert all(95 - t <= 30 for t, _ in history.recommendations)
    assert history.last_demand_at == 95.0
