"""Pure pool decisions: create, surge before replacing, drain (D, then two idle reads of the
engine, or the timeout) before deleting."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from sagellm_core.api import labels as L
from sagellm_operator.reconcile.rollout import DrainTiming, IdleReads, count_read, decide

Obj = dict[str, Any]
NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
TIMING = DrainTiming(bound_s=5, timeout_s=600, poll_s=1)


def ago(seconds: float) -> datetime.datetime:
    return NOW - datetime.timedelta(seconds=seconds)


def inst(index: int, spec_hash: str = "h1", *, ready: bool = True, url: bool = True,
         drain: datetime.datetime | None = None, gen: int = 1, seen: int = 1,
         role: str = "general") -> Obj:  # fmt: skip
    status: Obj = {"ready": ready and drain is None, "observedGeneration": seen}
    if url:
        status["url"] = f"http://10.0.0.{index}:8000"
    notes = {}
    if drain is not None:
        notes = {L.ANNOTATION_DRAINING: "true", L.ANNOTATION_DRAIN_STARTED: drain.isoformat()}
    return {
        "metadata": {"name": f"p-{role}-{index}-{spec_hash}", "generation": gen,
                     "annotations": notes,
                     "labels": {L.LABEL_ROLE: role, L.LABEL_SPEC_HASH: spec_hash}},
        "spec": {"index": index},
        "status": status,
    }  # fmt: skip


def hand_marked(obj: Obj) -> Obj:
    obj["metadata"]["annotations"] = {L.ANNOTATION_DRAINING: "true"}
    obj["status"]["ready"] = False
    return obj


def by_name(*items: Obj) -> dict[str, Obj]:
    return {i["metadata"]["name"]: i for i in items}


def names(objs: list[Obj]) -> list[str]:
    return [o["metadata"]["name"] for o in objs]


def step(
    surplus: Obj,
    reads: dict[str, IdleReads] | None = None,
    acks: dict[str, datetime.datetime] | None = None,
) -> str | None:
    acts = decide(by_name(inst(0)), by_name(inst(0), surplus), NOW, TIMING, reads or {}, acks)
    assert acts.create == []
    name = surplus["metadata"]["name"]
    found = [k for k in ("drain", "confirm", "probe", "delete") if name in getattr(acts, k)]
    assert len(found) <= 1
    if name in acts.timed_out:
        return "timeout"
    return found[0] if found else None


S = "p-general-1-h1"


@pytest.mark.parametrize(
    ("surplus", "reads", "action"),
    [
        (inst(1), None, "drain"),  # serving: mark draining first
        (inst(1, drain=ago(2)), None, "confirm"),  # within D: ask whether every router knows
        (inst(1, drain=ago(6)), None, "probe"),  # after D: read the engine
        (inst(1, drain=ago(6)), {S: IdleReads(1, ago(0.5))}, None),  # next read not due yet
        (inst(1, drain=ago(6)), {S: IdleReads(1, ago(1))}, "probe"),  # second read due
        (inst(1, drain=ago(6)), {S: IdleReads(2, ago(0.1))}, "delete"),  # idle twice: go
        (inst(1, drain=ago(9)), {S: IdleReads(2, ago(5))}, "probe"),  # reads from before D: void
        (inst(1, drain=ago(9)), {S: IdleReads(0, ago(1))}, "probe"),  # busy: keep reading
        (inst(1, drain=ago(600)), {S: IdleReads(0, ago(0.1))}, "timeout"),  # bound reached
        (inst(1, drain=ago(1), url=False), None, "delete"),  # never served / pod gone
        (hand_marked(inst(1)), None, "drain"),  # draining=true by hand: stamp the start
    ],
)
def test_surplus_instances_drain_before_they_go(
    surplus: Obj, reads: dict[str, IdleReads] | None, action: str | None
) -> None:
    assert step(surplus, reads) == action


@pytest.mark.parametrize(
    ("drain_s", "acked_s", "reads", "action"),
    [
        (2, 1, None, "probe"),  # every router listed it 1 s ago: D no longer matters
        (2, 1, {S: IdleReads(2, ago(0.5))}, "delete"),  # idle twice since the acknowledgement
        (2, 1, {S: IdleReads(2, ago(1.5))}, "probe"),  # reads from before it say nothing
        (2, 3, None, "confirm"),  # an acknowledgement older than this drain is not one
        (9, 1, {S: IdleReads(2, ago(3))}, "delete"),  # D passed first: reads after D count
    ],
)
def test_routers_acknowledging_a_drain_end_the_discovery_wait(
    drain_s: float, acked_s: float, reads: dict[str, IdleReads] | None, action: str
) -> None:
    assert step(inst(1, drain=ago(drain_s)), reads, {S: ago(acked_s)}) == action


def test_a_drain_asks_to_be_looked_at_again() -> None:
    acts = decide(by_name(inst(0)), by_name(inst(0), inst(1)), NOW, TIMING, {})
    assert acts.drain == [S]
    assert acts.recheck_s == 1  # ask the routers at the next poll
    acts = decide(by_name(inst(0)), by_name(inst(0), inst(1, drain=ago(4.5))), NOW, TIMING, {})
    assert acts.recheck_s == 0.5  # D ends before the next poll
    assert decide(by_name(inst(0)), by_name(inst(0)), NOW, TIMING, {}).recheck_s is None


def test_zero_timeout_deletes_without_waiting() -> None:
    timing = DrainTiming(bound_s=5, timeout_s=0, poll_s=1)
    acts = decide(by_name(inst(0)), by_name(inst(0), inst(1, drain=NOW)), NOW, timing, {})
    assert acts.delete == [S]
    assert acts.timed_out == [S]


def test_missing_instances_are_created_at_once() -> None:
    acts = decide(by_name(inst(0), inst(1), inst(2)), by_name(inst(0)), NOW, TIMING, {})
    assert names(acts.create) == ["p-general-1-h1", "p-general-2-h1"]


@pytest.mark.parametrize(
    ("existing", "created", "drained"),
    [
        # all on h1: surge the first index only
        ((inst(0), inst(1)), ["p-general-0-h2"], []),
        # the new one is starting: nothing else happens
        ((inst(0), inst(0, "h2", ready=False), inst(1)), [], []),
        # not serving its generation yet: still starting
        ((inst(0), inst(0, "h2", gen=2, seen=1), inst(1)), [], []),
        # new one settled: the old one drains and the next index surges
        ((inst(0), inst(0, "h2"), inst(1)), ["p-general-1-h2"], ["p-general-0-h1"]),
        # old one draining while the next surge starts
        ((inst(0, drain=ago(1)), inst(0, "h2"), inst(1), inst(1, "h2", ready=False)), [], []),
        # last one settled: drain it
        ((inst(0, "h2"), inst(1), inst(1, "h2")), [], ["p-general-1-h1"]),
        # a broken old instance is replaced too
        ((inst(0, ready=False), inst(1)), ["p-general-0-h2"], []),
    ],
)
def test_rolling_update_surges_then_drains(
    existing: tuple[Obj, ...], created: list[str], drained: list[str]
) -> None:
    acts = decide(by_name(inst(0, "h2"), inst(1, "h2")), by_name(*existing), NOW, TIMING, {})
    assert names(acts.create) == created
    assert acts.drain == drained


def test_rolling_update_never_lowers_ready_count() -> None:
    """Replay a whole rollout: every step keeps at least `replicas` ready, non-draining."""
    desired = by_name(inst(0, "h2"), inst(1, "h2"), inst(2, "h2"))
    cluster = by_name(inst(0), inst(1), inst(2))
    for _ in range(20):
        acts = decide(desired, cluster, NOW, TIMING, {})
        for obj in acts.create:  # a created instance becomes ready on the next step
            cluster[obj["metadata"]["name"]] = inst(obj["spec"]["index"], "h2")
        for name in acts.drain:
            old = cluster[name]
            cluster[name] = inst(old["spec"]["index"], drain=ago(700))
        for name in acts.delete:
            del cluster[name]
        serving = [i for i in cluster.values() if i["status"]["ready"]]
        assert len(serving) >= 3
    assert sorted(cluster) == sorted(desired)


def test_scale_in_and_rollout_together_drain_the_surplus_at_once() -> None:
    acts = decide(by_name(inst(0, "h2")), by_name(inst(0), inst(1)), NOW, TIMING, {})
    assert names(acts.create) == ["p-general-0-h2"]
    assert acts.drain == ["p-general-1-h1"]


def test_a_desired_instance_still_draining_is_left_to_finish() -> None:
    """Rolled back to a spec whose instance is draining: wait for it to go, keep the other."""
    existing = by_name(inst(0, drain=ago(1)), inst(0, "h2"))
    acts = decide(by_name(inst(0)), existing, NOW, TIMING, {})
    assert acts.create == []
    assert acts.drain == []


def test_roles_roll_independently() -> None:
    desired = by_name(inst(0, "h2", role="prefill"), inst(0, "h2", role="decode"))
    existing = by_name(inst(0, role="prefill"), inst(0, role="decode"))
    acts = decide(desired, existing, NOW, TIMING, {})
    assert names(acts.create) == ["p-decode-0-h2", "p-prefill-0-h2"]


@pytest.mark.parametrize(
    ("prev", "load", "zeros"),
    [
        (None, 0.0, 1),
        (IdleReads(1, ago(1)), 0.0, 2),
        (IdleReads(1, ago(1)), 3.0, 0),  # busy again: start over
        (IdleReads(1, ago(1)), None, 0),  # unreadable is not idle
        (IdleReads(5, ago(7)), 0.0, 1),  # a read from before D of this drain does not count
    ],
)
def test_idle_reads_count_consecutive_zeros_after_d(
    prev: IdleReads | None, load: float | None, zeros: int
) -> None:
    assert count_read(prev, load, NOW, ago(5)).zeros == zeros
