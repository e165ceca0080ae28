"""The one condition builder: observedGeneration on every condition, stable transition times."""

from __future__ import annotations

from sagellm_core.conditions import condition


def test_every_condition_names_its_generation_and_keeps_its_transition_time() -> None:
    first = condition([], "Ready", False, "Waiting", "0/1", now="t1", generation=3)
    assert first == {"type": "Ready", "status": "False", "reason": "Waiting", "message": "0/1",
                     "lastTransitionTime": "t1", "observedGeneration": 3}  # fmt: skip
    same = condition([first], "Ready", False, "Waiting", "still 0/1", now="t2", generation=4)
    assert (same["lastTransitionTime"], same["observedGeneration"]) == ("t1", 4)
    flipped = condition([same], "Ready", True, "AllReady", "", now="t3", generation=4)
    assert flipped["lastTransitionTime"] == "t3"


def test_a_writer_may_stamp_the_time_itself() -> None:
    assert (
        condition([], "Ready", True, "Ready", "", now=None, generation=1)["lastTransitionTime"]
        is None
    )
