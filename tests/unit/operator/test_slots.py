"""Which indices a role keeps: scale-in drops the instance whose drain ends soonest."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from sagellm_core.api import Role
from sagellm_core.api import labels as L
from sagellm_operator.reconcile.pool import role_indices
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
    assert kept_indices(replicas, held, taken, limit=1000) == kept


@pytest.mark.parametrize(
    ("replicas", "held", "taken", "kept"),
    [
        (3, {0: R, 1: R}, {2}, [0, 1]),  # the only free index is draining: wait for it
        (3, {0: R}, {2}, [0, 1]),
        (2, {}, set(), [0, 1]),
    ],
)
def test_indices_stay_below_the_limit(
    replicas: int, held: dict[int, Held], taken: set[int], kept: list[int]
) -> None:
    assert kept_indices(replicas, held, taken, limit=3) == kept


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


def instance(index: int, role: str = "general", *, ready: bool = True, drain: bool = False,
             deleting: bool = False) -> dict[str, Any]:  # fmt: skip
    meta: dict[str, Any] = {"name": f"p-{role}-{index}", "labels": {L.LABEL_ROLE: role}}
    if drain:
        meta["annotations"] = {L.ANNOTATION_DRAINING: "true"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status = {"ready": ready, "url": url(index)}
    return {"metadata": meta, "spec": {"index": index}, "status": status}


def indices_of(replicas: int, role: Role, *insts: dict[str, Any],
               loads: dict[int, float] | None = None) -> tuple[list[int], list[str]]:  # fmt: skip
    """``role_indices`` with engines whose load is ``loads`` by index; the URLs it read."""
    read: list[str] = []

    async def engine_load(url: str) -> float | None:
        read.append(url)
        return (loads or {}).get(int(url.split(".")[-1].split(":")[0]))

    ctx: Any = SimpleNamespace(engine_load=engine_load)
    existing = {i["metadata"]["name"]: i for i in insts}
    return asyncio.run(role_indices(ctx, replicas, role, existing)), sorted(read)


def url(index: int) -> str:
    return f"http://10.0.0.{index}:8000"


def test_a_scale_in_reads_the_ready_engines_and_drops_the_idlest() -> None:
    kept, read = indices_of(2, Role.GENERAL, instance(0), instance(1), instance(2),
                            loads={0: 3, 1: 0, 2: 1})  # fmt: skip
    assert (kept, read) == ([0, 2], [url(0), url(1), url(2)])


def test_no_read_without_a_surplus_of_ready_instances() -> None:
    assert indices_of(2, Role.GENERAL, instance(0), instance(1)) == ([0, 1], [])
    # the one that is not Ready covers the surplus
    assert indices_of(2, Role.GENERAL, instance(0), instance(1), instance(2, ready=False)) == (
        [0, 1], [])  # fmt: skip
    assert indices_of(0, Role.GENERAL, instance(0), instance(1)) == ([], [])  # all go


def test_draining_and_deleting_instances_keep_their_index_taken() -> None:
    insts = (instance(0, drain=True), instance(1), instance(2, deleting=True))
    assert indices_of(3, Role.GENERAL, *insts) == ([1, 3, 4], [])


def test_each_role_keeps_its_own_indices() -> None:
    insts = (instance(0, "prefill"), instance(1, "prefill"), instance(0, "decode"))
    assert indices_of(2, Role.DECODE, *insts) == ([0, 1], [])
    kept, read = indices_of(1, Role.PREFILL, *insts, loads={0: 2, 1: 5})
    assert (kept, read) == ([1], [url(0), url(1)])
