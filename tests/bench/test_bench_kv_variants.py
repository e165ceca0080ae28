"""``kv_aware_recent``: the router's recent picks bridge the lag of the engines' KV events."""

from __future__ import annotations

import random

import pytest

from sagellm_router.bench.kv_variants import KvAwareRecent, Recent, RecentParams
from sagellm_router.kv.events import Batch, Stored
from sagellm_router.types import Endpoint
from sagellm_router.validation import CHAT, ParsedRequest


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("sent_at", "asked_at", "prefix_blocks", "share"),
    [
        (100.0, 100.5, 4, 1.0),  # within the window: the whole prompt
        (100.0, 100.5, 2, 0.5),  # only the first half was sent there
        (100.0, 102.5, 4, 0.0),  # older than the window
    ],
)
def test_recent_share(sent_at: float, asked_at: float, prefix_blocks: int, share: float) -> None:
    clock = Clock()
    recent = Recent(2.0, clock)
    hashes = [1, 2, 3, 4]
    clock.now = sent_at
    recent.record("http://a", hashes[:prefix_blocks])
    clock.now = asked_at
    assert recent.share("http://a", hashes) == share
    assert recent.share("http://b", hashes) == 0.0


class Loads:
    def __init__(self, loads: dict[str, float]) -> None:
        self._loads = loads

    def in_flight(self, url: str) -> int:
        return 0

    def load(self, url: str) -> float:
        return self._loads.get(url, 0.0)


def test_recent_pick_wins_before_the_engine_reports_it() -> None:
    """Both engines publish but neither holds the prompt yet: the first pick goes by load; a
    second request with the same prefix follows it (without the bridge it would go by load
    again), and once the window has passed only the engines' events count."""
    clock = Clock()
    a, b = Endpoint("http://a", "a"), Endpoint("http://b", "b")
    strategy = KvAwareRecent(RecentParams(), random.Random(0), clock, follow=False)
    for url in (a.url, b.url):  # no ZMQ: the index is fed by hand
        strategy.index.apply(url, Batch(0, 0.0, (Stored((9,), None, tuple(range(16)), 16),), None))
    messages = [{"role": "system", "content": "Tenant 4:" + " alpha beta" * 100},
                {"role": "user", "content": "why?"}]  # fmt: skip
    request = ParsedRequest(CHAT, "m", False, {"model": "m", "messages": messages})
    assert strategy.pick(request, [a, b], Loads({a.url: 1.0})) is b
    assert strategy.pick(request, [a, b], Loads({b.url: 3.0})) is b  # 3 < 0 + 32
    clock.now += 3.0
    assert strategy.pick(request, [a, b], Loads({b.url: 3.0})) is a
    assert strategy.picks == {"kv": 3, "fallback": 0}
