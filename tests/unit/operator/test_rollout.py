"""Pure pool decisions: create, drain before delete, one rolling update per role at a time."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from sagellm_core.api import labels as L
from sagellm_operator.reconcile.rollout import decide

Obj = dict[str, Any]
NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)


def inst(index: int, spec_hash: str = "h1", *, ready: bool = True, url: bool = True,
         notes: dict[str, str] | None = None, gen: int = 1, seen: int = 1) -> Obj:  # fmt: skip
    status: Obj = {"ready": ready, "observedGeneration": seen}
    if url:
        status["url"] = f"http://10.0.0.{index}:8000"
    return {
        "metadata": {"name": f"p-general-{index}", "generation": gen, "annotations": notes or {},
                     "labels": {L.LABEL_ROLE: "general", L.LABEL_SPEC_HASH: spec_hash}},
        "spec": {"index": index},
        "status": status,
    }  # fmt: skip


def by_name(*items: Obj) -> dict[str, Obj]:
    return {i["metadata"]["name"]: i for i in items}


def draining(started: datetime.datetime, **extra: str) -> dict[str, str]:
    stamp = started.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {L.ANNOTATION_DRAINING: "true", L.ANNOTATION_DRAIN_STARTED: stamp, **extra}


EARLY = NOW - datetime.timedelta(seconds=5)
LATE = NOW - datetime.timedelta(seconds=60)


@pytest.mark.parametrize(
    ("surplus", "action"),
    [
        (inst(1), "drain"),  # serving: mark draining first
        (inst(1, notes=draining(EARLY), ready=False), None),  # draining, router not done yet
        (inst(1, notes=draining(EARLY, **{L.ANNOTATION_IDLE: "true"}), ready=False), "delete"),
        (inst(1, notes=draining(LATE), ready=False), "delete"),  # drain timeout passed
        (inst(1, notes=draining(EARLY), ready=False, url=False), "delete"),  # never served
    ],
)
def test_surplus_instances_drain_before_they_go(surplus: Obj, action: str | None) -> None:
    acts = decide(by_name(inst(0)), by_name(inst(0), surplus), NOW, drain_timeout=30)
    assert acts.drain == (["p-general-1"] if action == "drain" else [])
    assert acts.delete == (["p-general-1"] if action == "delete" else [])
    assert acts.create == []
    assert acts.update == []


def test_missing_instances_are_created() -> None:
    acts = decide(by_name(inst(0), inst(1)), by_name(inst(0)), NOW, 30)
    assert [o["metadata"]["name"] for o in acts.create] == ["p-general-1"]


@pytest.mark.parametrize(
    ("existing", "updated"),
    [
        ((inst(0), inst(1)), ["p-general-0"]),  # all settled: first outdated one
        ((inst(0, "h2"), inst(1)), ["p-general-1"]),  # one done, next one
        ((inst(0, "h2", ready=False), inst(1)), []),  # previous one not ready yet: wait
        ((inst(0, "h2", gen=2, seen=1), inst(1)), []),  # not serving its generation yet
        ((inst(0, "h2"), inst(1, "h2")), []),  # nothing outdated
    ],
)
def test_rolling_update_one_at_a_time(existing: tuple[Obj, ...], updated: list[str]) -> None:
    acts = decide(by_name(inst(0, "h2"), inst(1, "h2")), by_name(*existing), NOW, 30)
    assert [o["metadata"]["name"] for o in acts.update] == updated
