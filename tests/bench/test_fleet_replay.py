"""bench/fleet_replay.py's model of vllm-router's cache_aware rule (the offline what-if)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from bench.fleet_replay import BLOCK, ThresholdFleet, make_fleet
from sagellm_sim.engine import SimRequest


@dataclass
class Loaded(ThresholdFleet):
    loads: list[int] = field(default_factory=list)

    def load(self, e: int) -> int:
        return self.loads[e]


def request(hashes: list[int], tokens: int) -> SimRequest:
    return SimRequest("r", list(range(tokens)), 8, 8, 0.0, hashes)


@pytest.mark.parametrize(
    ("loads", "trees", "hashes", "want"),
    [
        # balanced: the engine whose tree matches most, if over 30 % of the prompt
        ([5, 0, 0], [{1, 2, 3}, set(), {9}], [1, 2, 3, 4], 0),
        # a match of 30 % or less: the smallest tree instead
        ([0, 0, 0], [{1, 10, 11}, {7, 8}, {5, 6, 9}], [1, 2, 3, 4], 1),
        # a hot engine 64 requests above the idlest but not 1.5x its load: still the match
        ([160, 100, 96], [{1, 2, 3}, set(), set()], [1, 2, 3, 4], 0),
        # over both thresholds: the idlest, whatever it holds
        ([70, 3, 5], [{1, 2, 3}, set(), set()], [1, 2, 3, 4], 1),
    ],
)
def test_cache_aware_rule(
    loads: list[int], trees: list[set[int]], hashes: list[int], want: int
) -> None:
    fleet = Loaded([], "cache_aware", [], trees=[set(t) for t in trees], loads=loads)
    pick, _ = fleet.pick(request(hashes, len(hashes) * BLOCK), random.Random(0))
    assert pick == want
    assert set(hashes) <= fleet.trees[want]  # it remembers what it sent


def test_make_fleet_gives_each_engine_its_own_tree() -> None:
    fleet = make_fleet("cache_aware", [])
    assert isinstance(fleet, ThresholdFleet)
    assert not isinstance(make_fleet("pending", []), ThresholdFleet)
