"""Which indices a role keeps: scale-in drops the instance whose drain ends soonest."""

from __future__ import annotations

from typing import Any

import pytest

from sagellm_operator.reconcile.slots import Held, held_by_index, kept_indices

R = Held(ready=True, load=None)


def busy(load: float) -> Held:
    return Held(ready=True, load=load)


@pytest.mark.parametrize(
    ("replicas", "held", "taken", "kept"),
    [
        (3, {}, set(), [0, 1, 2]),  # first start: dense
        (2, {0: R, 1: R}, set(), [0, 1]),  # steady: nothing moves
        (2, {0: R, 1: R, 2: R}, set(), [0, 1]),  # no loads: the highest index goes
        (2, {0: busy(2), 1: busy(0), 2: busy(3)}, set(), [0, 2]),  # the idle one goes
        (1, {0: busy(1), 1: busy(4), 2: busy(2)}, set(), [1]),  # the busiest stays
        (2, {0: busy(1), 1: Held(False, None), 2: busy(1)}, set(), [0, 2]),  # starting goes
        (2, {0: busy(0), 1: busy(5), 2: R}, set(), [1, 2]),  # an unread load counts as busy
        (2, {0: busy(1), 1: busy(1), 2: busy(1)}, set(), [0, 1]),  # a tie: the highest index
        (0, {0: busy(3), 1: busy(0)}, set(), []),  # to zero
        (3, {0: R, 2: R}, set(), [0, 1, 2]),  # a hole is filled first
        (3, {0: R, 1: R}, {2}, [0, 1, 3]),  # a draining index is not reused
        (2, {1: R}, {0}, [1, 2]),  # nor the lowest one
    ],
)
def test_kept_indices(
    replicas: int, held: dict[int, Held], taken: set[int], kept: list[int]
) -> None:
    assert kept_indices(replicas, held, taken) == kept


def serving(index: int, name: str, ready: bool = True) -> dict[str, object]:
    return {"metadata": {"name": name}, "spec": {"index": index}, "status": {"ready": ready}}


@pytest.mark.parametrize(
    ("instances", "loads", "held"),
    [
        ([serving(0, "a"), serving(1, "b")], {"a": 2, "b": 0}, {0: busy(2), 1: busy(0)}),
        ([serving(0, "a")], {}, {0: R}),  # not read
        ([serving(0, "a", ready=False)], {}, {0: Held(False, 0.0)}),  # starting: nothing to end
        # a rolling update: the old and the new instance of one index add up
        ([serving(0, "old"), serving(0, "new", ready=False)], {"old": 3}, {0: busy(3)}),
        ([serving(0, "old"), serving(0, "new")], {"old": 3, "new": 1}, {0: busy(4)}),
        ([serving(0, "old"), serving(0, "new")], {"old": 3}, {0: R}),  # one unread: unknown
    ],
)
def test_held_by_index(
    instances: list[dict[str, Any]], loads: dict[str, float], held: dict[int, Held]
) -> None:
    assert held_by_index(instances, loads) == held
