"""``LoadSources``: the numbers the admission queue's instance views are built from."""

from __future__ import annotations

import pytest

from sagellm_router.pool_runtime import LoadSources
from sagellm_router.routing.base import Loads
from sagellm_router.stats.engine import EngineStats
from sagellm_router.stats.tracker import RequestTracker

URL = "http://e0"


def sources(now: list[float], stats: EngineStats | None) -> tuple[LoadSources, RequestTracker]:
    tracker = RequestTracker(lambda: now[0])
    engine_stats = {URL: stats} if stats else {}
    loads = Loads(tracker, engine_stats, lambda: now[0])
    return LoadSources(tracker, engine_stats, loads, lambda: now[0], stale_after_s=10.0), tracker


@pytest.mark.parametrize(
    ("own_now", "own_at_scrape", "running", "expected"),
    [
        (2, 3, 5.0, 2 + 2),  # 2 of the 5 running were another router's
        (0, 5, 5.0, 0),  # ours, and all finished since the scrape: the slots are free now
        (4, 0, 0.0, 4),  # the engine had not seen ours yet
    ],
)
def test_in_flight_is_own_count_plus_other_routers_running(
    own_now: int, own_at_scrape: float, running: float, expected: float
) -> None:
    now = [100.0]
    stats = EngineStats(running=running, waiting=1.0, at=99.5, own_in_flight=own_at_scrape)
    src, tracker = sources(now, stats)
    for _ in range(own_now):
        tracker.start(URL)
    assert src.in_flight(URL) == expected
    assert src.waiting(URL) == 1.0
    now[0] = 200.0  # the scrape went stale: the router's own count only
    assert src.in_flight(URL) == own_now
    assert src.waiting(URL) == 0.0


def test_in_flight_without_a_scrape_is_the_routers_count() -> None:
    src, tracker = sources([0.0], None)
    tracker.start(URL)
    assert src.in_flight(URL) == 1
