"""Kubernetes event handling fed with list/watch events; passive health and request tracking."""

from __future__ import annotations

from typing import Any

import pytest

from sagellm_router.discovery.k8s_index import (
    PoolIndex,
    WatchExpired,
    WatchFailed,
    pool_from_object,
)
from sagellm_router.health import HealthBook
from sagellm_router.stats.tracker import RequestTracker
from sagellm_router.types import Role


def ipool(
    name: str, rv: str, endpoints: list[dict[str, Any]], model: str = "llama"
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv},
        "status": {
            "model": model,
            "scheduling": {"routing": "locality", "policy": "fifo"},
            "endpoints": endpoints,
        },
    }


EP = {
    "instance": "i0",
    "role": "Decode",
    "url": "http://10.0.0.5:8000/",
    "ready": True,
    "draining": False,
}


def test_pool_from_object_reads_status_endpoints() -> None:
    pool = pool_from_object(ipool("p", "1", [EP, {"url": "ftp://x"}, {**EP, "role": "Chef"}]))
    assert pool is not None
    assert (pool.name, pool.model, pool.routing, pool.policy) == (
        "ns/p",
        "llama",
        "locality",
        "fifo",
    )
    assert [(e.url, e.role, e.ready) for e in pool.endpoints] == [
        ("http://10.0.0.5:8000", Role.DECODE, True)
    ]
    assert pool_from_object({"metadata": {"name": "x"}, "status": {}}) is None  # no model name


def test_the_router_reads_the_status_and_never_the_spec() -> None:
    """The operator's status is the whole contract: a spec the router could not parse (or one
    from a newer API) changes nothing; slots come from the endpoint's maxConcurrency."""
    obj = ipool(
        "p", "1", [{**EP, "maxConcurrency": 7}, {**EP, "instance": "i1", "url": "http://b"}]
    )
    obj["spec"] = {"model": {"name": "other"}, "roles": "not a roles object", "scheduling": 42}
    pool = pool_from_object(obj)
    assert pool is not None
    assert (pool.model, pool.routing, pool.policy) == ("llama", "locality", "fifo")
    assert [e.max_concurrency for e in pool.endpoints] == [7, None]
    assert pool_from_object({"metadata": {"name": "x"}, "spec": {"model": {"name": "m"}}}) is None


def test_list_then_watch_events() -> None:
    index = PoolIndex()
    first = index.reset([ipool("a", "5", [EP])], "10")
    assert [p.name for p in first] == ["ns/a"]
    assert index.resource_version == "10"
    added = index.apply({"type": "ADDED", "raw_object": ipool("b", "11", [])})
    assert added is not None
    assert [p.name for p in added] == ["ns/a", "ns/b"]
    draining = index.apply(
        {"type": "MODIFIED", "raw_object": ipool("a", "12", [{**EP, "draining": True}])}
    )
    assert draining is not None
    assert draining[0].endpoints[0].draining
    same = index.apply(
        {"type": "MODIFIED", "raw_object": ipool("a", "13", [{**EP, "draining": True}])}
    )
    assert same is None  # nothing the router cares about changed
    bookmark = {"type": "BOOKMARK", "raw_object": {"metadata": {"resourceVersion": "20"}}}
    assert index.apply(bookmark) is None
    assert index.resource_version == "20"
    gone = index.apply({"type": "DELETED", "raw_object": ipool("b", "21", [])})
    assert gone is not None
    assert [p.name for p in gone] == ["ns/a"]
    with pytest.raises(WatchExpired):
        index.apply({"type": "ERROR", "raw_object": {"code": 410, "message": "too old"}})
    with pytest.raises(WatchFailed, match="forbidden"):
        index.apply({"type": "ERROR", "raw_object": {"code": 403, "message": "forbidden"}})


def test_health_book_ejects_after_consecutive_failures() -> None:
    book = HealthBook(failure_threshold=3)
    assert not book.failure("u")
    book.success("u")  # resets the streak
    assert [book.failure("u") for _ in range(3)] == [False, False, True]
    assert "u" in book.ejected
    assert book.ejected["u"].reason == "error"
    assert not book.failure("u")  # already ejected: reported once
    book.readmit("u")
    assert "u" not in book.ejected
    book.failure("v")
    book.forget({"u"})
    assert not book.failure("v")  # forgotten streak restarts


def test_tracker_in_flight_and_ttft_with_injected_clock() -> None:
    now = [0.0]
    tracker = RequestTracker(lambda: now[0], ttft_alpha=0.5)
    t0 = tracker.start("u")
    tracker.start("u")
    assert (tracker.in_flight("u"), tracker.total_in_flight) == (2, 2)
    now[0] = 2.0
    assert tracker.first_byte("u", t0) == 2.0
    now[0] = 6.0
    tracker.first_byte("u", t0)
    assert tracker.counters("u").ttft_ewma_s == 4.0
    tracker.finish("u")
    tracker.finish("u", failed=True)
    assert (tracker.in_flight("u"), tracker.counters("u").failed) == (0, 1)
