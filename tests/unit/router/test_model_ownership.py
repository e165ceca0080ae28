"""The router's pool table applies the model-name ownership rule to every discovery source."""

from __future__ import annotations

from typing import Any

from sagellm_router.config import parse_settings
from sagellm_router.discovery.base import PoolTable
from sagellm_router.discovery.k8s_index import PoolIndex
from sagellm_router.discovery.static import snapshots_of
from sagellm_router.types import PoolSnapshot


def _static(pools: str) -> tuple[PoolSnapshot, ...]:
    settings = parse_settings(f"discovery:\n  type: static\n  pools:\n{pools}")
    return snapshots_of(settings.discovery)  # type: ignore[arg-type]


def test_static_pools_follow_file_order() -> None:
    pools = _static(
        "    - {name: zeta, model: m, endpoints: [{url: 'http://127.0.0.1:1'}]}\n"
        "    - {name: alpha, model: m, endpoints: [{url: 'http://127.0.0.1:2'}]}\n"
        "    - {name: other, model: n}\n"
    )
    table = PoolTable(pools)
    assert [p.name for p in table.for_model("m")] == ["zeta"], "first in the file wins"
    assert table.rejected == {"alpha": "zeta"}
    assert [p.name for p in table.pools] == ["other", "zeta"]
    assert table.urls("alpha") == set()


def test_static_created_at_wins_over_file_order() -> None:
    table = PoolTable(
        _static(
            "    - {name: later, model: m}\n"
            "    - {name: older, model: m, created_at: '2025-06-01T00:00:00Z'}\n"
            "    - {name: newest, model: m, created_at: '2025-07-01T00:00:00+02:00'}\n"
        )
    )
    assert [p.name for p in table.for_model("m")] == ["older"]
    assert table.rejected == {"later": "older", "newest": "older"}


def _ipool(ns: str, name: str, created: str, model: str = "m") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
        "status": {"model": model, "endpoints": [{"instance": f"{name}-0", "role": "General",
                                  "url": f"http://{name}:8000", "ready": True}]},
    }  # fmt: skip


def test_kubernetes_pools_oldest_wins_and_the_owner_leaving_hands_over() -> None:
    index = PoolIndex()
    victim = _ipool("tenant-a", "chat", "2026-01-01T00:00:00Z")
    evil = _ipool("a-tenant-b", "evil", "2026-01-01T00:01:00Z")
    table = PoolTable(index.reset([victim, evil], "1"))
    assert [p.name for p in table.for_model("m")] == ["tenant-a/chat"]
    assert table.rejected == {"a-tenant-b/evil": "tenant-a/chat"}
    after = index.apply({"type": "DELETED", "object": victim})
    assert after is not None
    table.replace(after)
    assert [p.name for p in table.for_model("m")] == ["a-tenant-b/evil"]
    assert table.rejected == {}


def test_allow_list_ignores_pools_in_other_namespaces() -> None:
    index = PoolIndex(namespaces=["tenant-a"])
    victim = _ipool("tenant-a", "chat", "2026-01-01T00:01:00Z")
    older_outside = _ipool("elsewhere", "squat", "2020-01-01T00:00:00Z")
    assert [p.name for p in index.reset([victim, older_outside], "1")] == ["tenant-a/chat"]
    assert (
        index.apply({"type": "ADDED", "object": _ipool("elsewhere", "late", "2027-01-01")}) is None
    )
