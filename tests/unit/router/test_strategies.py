"""Table-driven distribution tests for every routing strategy (seeded RNG, fake loads)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import pytest

from sagellm_router.routing.base import Loads, StrategyContext, least_loaded
from sagellm_router.routing.prefix_aware import block_hashes
from sagellm_router.routing.registry import StrategyBook, default_strategies
from sagellm_router.stats.engine import EngineStats
from sagellm_router.stats.tracker import RequestTracker
from sagellm_router.types import Endpoint


@dataclass
class Req:
    prompt_text: str = ""
    session_key: str | None = None


class FakeLoads:
    def __init__(self, loads: dict[str, float] | None = None) -> None:
        self.values = dict(loads or {})

    def in_flight(self, url: str) -> int:
        return int(self.values.get(url, 0))

    def load(self, url: str) -> float:
        return self.values.get(url, 0.0)


E = [Endpoint(f"http://e{i}", f"e{i}") for i in range(3)]


def make(name: str, **params: object):  # type: ignore[no-untyped-def]
    return default_strategies()[name](StrategyContext(params=params, rng=random.Random(3)))


def spread(name: str, requests: list[Req], loads: FakeLoads, **params: object) -> Counter[str]:
    strategy = make(name, **params)
    return Counter(strategy.pick(r, E, loads).instance for r in requests)


SAME = [Req("p")] * 300
CASES = [
    # (strategy, requests, loads, expected counts)
    ("round_robin", SAME, {}, {"e0": 100, "e1": 100, "e2": 100}),
    ("load_balanced", SAME, {"http://e0": 5, "http://e1": 1, "http://e2": 3}, {"e1": 300}),
    ("power_of_two", SAME, {"http://e0": 9, "http://e1": 0, "http://e2": 9}, None),
    ("affinity", [Req("x", "alice")] * 50, {}, None),
]


@pytest.mark.parametrize(("name", "requests", "loads", "expected"), CASES)
def test_distribution(name, requests, loads, expected) -> None:  # type: ignore[no-untyped-def]
    counts = spread(name, requests, FakeLoads(loads))
    if expected is not None:
        assert dict(counts) == expected
    elif name == "power_of_two":  # e1 wins every sample it is in: 2 of 3 pairs
        assert counts["e1"] == pytest.approx(200, abs=30)
        assert counts["e0"] + counts["e2"] == 300 - counts["e1"]
    else:
        assert len(counts) == 1  # one session sticks to one endpoint


def test_random_is_roughly_uniform_and_seeded() -> None:
    a = spread("random", SAME * 10, FakeLoads())
    b = spread("random", SAME * 10, FakeLoads())
    assert a == b
    assert all(900 < n < 1100 for n in a.values())


@pytest.mark.parametrize(
    ("weights", "expected_sequence"),
    [
        ((5, 1, 1), ["e0", "e0", "e1", "e0", "e2", "e0", "e0"]),  # nginx smooth WRR order
        ((1, 1, 1), ["e0", "e1", "e2", "e0", "e1", "e2", "e0"]),
        ((2, 1, 0.5), None),
    ],
)
def test_weighted_round_robin(weights, expected_sequence) -> None:  # type: ignore[no-untyped-def]
    endpoints = [Endpoint(f"http://e{i}", f"e{i}", weight=w) for i, w in enumerate(weights)]
    strategy = make("weighted_round_robin")
    picks = [strategy.pick(Req(), endpoints, FakeLoads()).instance for _ in range(7 * 70)]
    if expected_sequence:
        assert picks[:7] == expected_sequence
    counts = Counter(picks)
    total = sum(weights)
    for i, w in enumerate(weights):
        assert counts[f"e{i}"] == pytest.approx(len(picks) * w / total, abs=2)


def test_affinity_spills_over_when_saturated_and_is_consistent() -> None:
    strategy = make("affinity", max_in_flight=2)
    sessions = [Req("", f"user-{i}") for i in range(60)]
    home = {r.session_key: strategy.pick(r, E, FakeLoads()).url for r in sessions}
    assert len(set(home.values())) == 3  # sessions spread over all endpoints
    # removing one endpoint only moves the sessions that lived on it
    moved = [r for r in sessions if strategy.pick(r, E[:2], FakeLoads()).url != home[r.session_key]]
    assert all(home[r.session_key] == E[2].url for r in moved)
    # saturate alice's home: she spills to the least loaded of the others
    alice = Req("", "alice")
    own = strategy.pick(alice, E, FakeLoads()).url
    loads = FakeLoads({e.url: (2 if e.url == own else 1) for e in E})
    assert strategy.pick(alice, E, loads).url != own


def test_affinity_without_key_is_least_loaded() -> None:
    loads = FakeLoads({"http://e0": 4, "http://e1": 2, "http://e2": 3})
    assert spread("affinity", [Req()] * 10, loads) == {"e1": 10}


def test_locality_same_prefix_same_endpoint_across_replicas_with_bounded_load() -> None:
    prompts = [Req(f"prefix-{i % 12} " * 50 + f"tail {i}") for i in range(120)]
    replica_a, replica_b = make("locality"), make("locality")
    a = [replica_a.pick(r, E, FakeLoads()).url for r in prompts]
    b = [replica_b.pick(r, E, FakeLoads()).url for r in prompts]
    assert a == b  # no shared state needed
    assert len(set(a)) == 3
    owner = {r.prompt_text[:256]: u for r, u in zip(prompts, a, strict=True)}
    assert all(owner[r.prompt_text[:256]] == u for r, u in zip(prompts, a, strict=True))
    # bounded load: a hot prefix overflows once its owner exceeds 1.25x the average
    hot = Req("hot " * 100)
    home = replica_a.pick(hot, E, FakeLoads()).url
    loads = FakeLoads({home: 5, **{e.url: 1 for e in E if e.url != home}})
    assert replica_a.pick(hot, E, loads).url != home  # capacity ceil(1.25*8/3)=4 < 6


def test_prefix_aware_follows_cached_prefix_until_imbalanced() -> None:
    strategy = make("prefix_aware", block_chars=8, balance_abs=4, balance_rel=1.5)
    loads = FakeLoads()
    doc_a, doc_b = "A" * 64, "B" * 64
    first_a = strategy.pick(Req(doc_a + "q1"), E, loads).url
    loads.values[first_a] = 1  # the engine now holds prefix A
    first_b = strategy.pick(Req(doc_b + "q1"), E, loads).url
    assert first_b != first_a  # no match for B: least load, which avoids A's engine
    for i in range(5):
        assert strategy.pick(Req(doc_a + f"q{i}"), E, loads).url == first_a
        assert strategy.pick(Req(doc_b + f"q{i}"), E, loads).url == first_b
    loads.values[first_a] = 20  # far above the others: balance wins over the cache
    assert strategy.pick(Req(doc_a + "again"), E, loads).url not in {first_a}


def test_prefix_aware_spreads_a_hot_prefix_over_its_holders_by_load() -> None:
    strategy = make("prefix_aware", block_chars=8, miss_cost=4)
    hot = "H" * 80
    loads = FakeLoads({e.url: 0 for e in E})
    first = strategy.pick(Req(hot + "q0"), E, loads).url
    picks = []
    for i in range(1, 13):  # every request adds one unit of load to the endpoint it went to
        url = strategy.pick(Req(hot + f"q{i}"), E, loads).url
        loads.values[url] += 1
        picks.append(url)
    # the holder takes requests until it is ~miss_cost busier than an empty engine, then the
    # prefix spills and the holders share it by load (never pinned to the first holder)
    assert picks[:4] == [first] * 4
    assert len(set(picks)) == 3
    assert max(loads.values.values()) - min(loads.values.values()) <= 1


@pytest.mark.parametrize(
    ("holder_load", "other_load", "winner"),
    [
        (0, 0, "holder"),  # equal load: the cache decides
        (3, 0, "holder"),  # 3 + 4/9 < 0 + 4: the holder misses 1 of 9 blocks, the other all
        (4, 0, "other"),  # 4 + 4/9 > 4: recomputing the prefix elsewhere is cheaper
        (10, 8, "holder"),  # the difference counts, not the level
    ],
)
def test_prefix_aware_cost_rule(holder_load: int, other_load: int, winner: str) -> None:
    strategy = make("prefix_aware", block_chars=8, miss_cost=4)
    prefix = "P" * 64  # 8 blocks; the prompt below has 9
    strategy.record(E[0].url, prefix + "x" * 8)
    loads = FakeLoads({E[0].url: holder_load, E[1].url: other_load})
    expected = E[0] if winner == "holder" else E[1]
    assert strategy.pick(Req(prefix + "question"), E[:2], loads) == expected


def test_prefix_aware_lru_bound() -> None:
    strategy = make("prefix_aware", block_chars=4, max_blocks_per_endpoint=3)
    strategy.pick(Req("aaaabbbbccccdddd"), E[:1], FakeLoads())
    hashes = block_hashes("aaaabbbbccccdddd", 4, 100)
    assert strategy.index.matched_blocks(E[0].url, hashes) == 0  # oldest evicted: chain broken
    assert len(strategy.index._cache[E[0].url]) == 3


def test_least_loaded_breaks_ties_randomly() -> None:
    rng = random.Random(1)
    picks = Counter(least_loaded(E, FakeLoads(), rng).instance for _ in range(300))
    assert set(picks) == {"e0", "e1", "e2"}


@pytest.mark.parametrize(
    ("own_now", "own_at_scrape", "running", "waiting", "expected"),
    [
        (1, 0, 4, 2, 1 + 6 + 2 + 4 * 0.5),  # other routers' 6 are added to our fresh count
        (1, 6, 4, 2, 1 + 0 + 2 + 4 * 0.5),  # all 6 were ours; 5 finished since the scrape
        (3, 2, 4, 2, 3 + 4 + 2 + 4 * 0.5),  # 2 of 6 ours, 4 from others, 1 sent since
        (0, 9, 4, 2, 0 + 0 + 2 + 4 * 0.5),  # engine saw fewer than we had sent: no others
    ],
)
def test_loads_add_fresh_own_count_to_other_routers_scraped_work(
    own_now: int, own_at_scrape: float, running: float, waiting: float, expected: float
) -> None:
    now = [100.0]
    tracker = RequestTracker(lambda: now[0])
    stats = {
        "http://e0": EngineStats(
            running=running, waiting=waiting, kv_usage=0.5, at=99.0, own_in_flight=own_at_scrape
        )
    }
    loads = Loads(tracker, stats, lambda: now[0])
    for _ in range(own_now):
        tracker.start("http://e0")
    assert loads.load("http://e0") == expected
    now[0] = 200.0  # scrape is stale: only the router's own count remains
    assert loads.load("http://e0") == own_now


def test_strategy_book_rejects_unknown_params() -> None:
    with pytest.raises(ValueError, match=r"routing\.params\.locality"):
        StrategyBook(default_strategies(), {"locality": {"bogus": 1}}, lambda: 0.0, 10)
    with pytest.raises(ValueError, match="miss_cost must be >= 0, got -1"):
        StrategyBook(default_strategies(), {"prefix_aware": {"miss_cost": -1}}, lambda: 0.0, 10)
    with pytest.raises(ValueError, match="unknown strategies"):
        StrategyBook(default_strategies(), {"nope": {}}, lambda: 0.0, 10)


def test_strategy_book_keeps_one_instance_per_pool() -> None:
    book = StrategyBook(default_strategies(), {}, lambda: 0.0, 10, seed=1)
    assert book.get("a", "round_robin") is book.get("a", "round_robin")
    assert book.get("a", "round_robin") is not book.get("b", "round_robin")


def test_strategy_name_precedence_and_fallback() -> None:
    from sagellm_router.config import RouterSettings
    from sagellm_router.errors import ApiError
    from sagellm_router.state import build_state
    from sagellm_router.types import PoolSnapshot

    state = build_state(RouterSettings(), lambda: 0.0)
    good, bad = PoolSnapshot("a", "m", routing="locality"), PoolSnapshot("b", "m", routing="nope")
    assert state.strategy_name(good, None) == "locality"
    assert state.strategy_name(good, "random") == "random"
    assert state.strategy_name(bad, None) == "load_balanced"
    with pytest.raises(ApiError, match="x-routing-strategy"):
        state.strategy_name(good, "nope")
