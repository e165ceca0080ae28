"""A pool copy that waited for the lock behind a newer spec is read again, not acted on."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from sagellm_operator.reconcile.pool import newest_copy

Obj = dict[str, Any]


def pool(generation: int, uid: str = "u1", replicas: int = 1, deleting: bool = False) -> Obj:
    meta: Obj = {"namespace": "ns", "name": "p", "uid": uid, "generation": generation}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"roles": {"general": {"replicas": replicas}}}}


class Api:
    def __init__(self, current: Obj | None) -> None:
        self.current, self.gets = current, 0

    async def get(self, plural: str, ns: str, name: str) -> Obj | None:
        self.gets += 1
        return self.current


def run(ctx: Any, copy: Obj) -> Obj | None:
    return asyncio.run(newest_copy(ctx, copy))


def test_an_older_copy_is_replaced_by_the_api_s() -> None:
    api = Api(pool(3, replicas=2))
    ctx: Any = SimpleNamespace(kube=api, generations={})
    assert run(ctx, pool(3, replicas=2)) == pool(3, replicas=2)  # the newest: used as is
    assert run(ctx, pool(2, replicas=3)) == pool(3, replicas=2)  # a resync's older copy
    assert api.gets == 1
    assert run(ctx, pool(3, replicas=2)) == pool(3, replicas=2)
    assert api.gets == 1


def test_a_recreated_pool_starts_its_own_count() -> None:
    api = Api(None)
    ctx: Any = SimpleNamespace(kube=api, generations={})
    run(ctx, pool(5, uid="old"))
    assert run(ctx, pool(1, uid="new")) == pool(1, uid="new")
    assert api.gets == 0


def test_a_pool_deleted_meanwhile_is_not_reconciled() -> None:
    for current in (None, pool(4, deleting=True)):
        ctx: Any = SimpleNamespace(kube=Api(current), generations={})
        run(ctx, pool(4))
        assert run(ctx, pool(3)) is None
