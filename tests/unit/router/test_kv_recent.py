"""kv_aware's bridge over the KV events' lag: what this router sent an engine within
``recent_s`` counts as cached there until the engine's own events say more."""

from __future__ import annotations

import random

import pytest

from sagellm_router.kv.events import Batch, Stored
from sagellm_router.kv.recent import Recent
from sagellm_router.routing.base import StrategyParamError
from sagellm_router.routing.kv_aware import KvAware, KvAwareParams
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
    recent.forget({"http://b"})
    assert recent.share("http://a", hashes) == 0.0


class Loads:
    def __init__(self, loads: dict[str, float]) -> None:
        self._loads = loads

    def in_flight(self, url: str) -> int:
        return 0

    def load(self, url: str) -> float:
        return self._loads.get(url, 0.0)


def strategy(recent_s: float, clock: Clock) -> KvAware:
    s = KvAware(KvAwareParams(recent_s=recent_s), random.Random(0), clock=clock)
    for url in ("http://a", "http://b"):  # both publish; neither holds the prompt yet
        s.index.apply(url, Batch(0, 0.0, (Stored((9,), None, tuple(range(16)), 16),), None))
    return s


MESSAGES = [{"role": "system", "content": "Tenant 4:" + " alpha beta" * 100},
            {"role": "user", "content": "why?"}]  # fmt: skip


@pytest.mark.parametrize(
    ("recent_s", "second"),
    [
        (2.0, "b"),  # the bridge: the second request follows the first (3 < 0 + 32)
        (0.0, "a"),  # events only: the second goes by load, and computes the prefix again
    ],
)
def test_a_recent_pick_counts_before_the_engine_reports_it(recent_s: float, second: str) -> None:
    clock = Clock()
    s = strategy(recent_s, clock)
    a, b = Endpoint("http://a", "a"), Endpoint("http://b", "b")
    request = ParsedRequest(CHAT, "m", False, {"model": "m", "messages": MESSAGES})
    assert s.pick(request, [a, b], Loads({a.url: 1.0})) is b
    assert s.pick(request, [a, b], Loads({b.url: 3.0})).instance == second
    clock.now += 3.0  # past the window: only the events count
    assert s.pick(request, [a, b], Loads({b.url: 3.0})) is a
    assert s.picks == {"kv": 3, "fallback": 0}


def test_negative_recent_window_is_refused() -> None:
    with pytest.raises(StrategyParamError, match="recent_s"):
        KvAware(KvAwareParams(recent_s=-1), random.Random(0), clock=Clock())
