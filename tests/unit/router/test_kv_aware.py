"""kv_aware: picks by the blocks engines truly hold (from their KV events), else prefix_aware."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from sagellm_core.sim_tokens import tokenize
from sagellm_router.kv.events import Batch, Stored
from sagellm_router.kv.index import KvIndex
from sagellm_router.routing.base import StrategyContext, StrategyParamError
from sagellm_router.routing.kv_aware import KvAware, KvAwareParams
from sagellm_router.types import Endpoint
from sagellm_sim.tokenizer import WORDS

A, B, C = (Endpoint(f"http://{n}:8000", n) for n in "abc")
TEXT = " ".join(WORDS[:64])  # one token per word: 4 blocks of 16
TOKENS = tokenize(TEXT)


@dataclass
class Req:
    prompt_text: str
    session_key: str | None = None


class Loads:
    def __init__(self, **loads: float) -> None:
        self.loads = loads

    def in_flight(self, url: str) -> int:
        return int(self.load(url))

    def load(self, url: str) -> float:
        return self.loads.get(url.split("//")[1].split(":")[0], 0.0)


def holding(index: KvIndex, engine: Endpoint, blocks: int, seq: int = 0) -> None:
    hashes = tuple(range(1, blocks + 1))
    index.apply(
        engine.url, Batch(seq, 0.0, (Stored(hashes, None, tuple(TOKENS[: 16 * blocks]), 16),), 0)
    )


def strategy(index: KvIndex, **params: float) -> KvAware:
    return KvAware(KvAwareParams(miss_cost=8, balance_abs=4, **params), random.Random(0), index,
                   follow=False)  # fmt: skip


@pytest.mark.parametrize(
    ("held", "loads", "winner"),
    [
        ({"a": 4, "b": 0}, {"a": 0, "b": 0}, "a"),  # the holder, at equal load
        ({"a": 4, "b": 2}, {"a": 3, "b": 0}, "a"),  # 3 + 0 < 0 + 8 * 2/4
        ({"a": 4, "b": 2}, {"a": 5, "b": 0}, "b"),  # 5 > 4: a half-cached engine wins
        ({"a": 4, "b": 0}, {"a": 9, "b": 1}, "b"),  # balance guard: 9 > 1 + 4 and > 1.5 x 1
        ({"a": 0, "b": 1}, {"a": 0, "b": 0}, "b"),  # one block beats none
    ],
)  # fmt: skip
def test_routing_table(held: dict[str, int], loads: dict[str, float], winner: str) -> None:
    index = KvIndex()
    for name, blocks in held.items():
        engine = {"a": A, "b": B}[name]
        if blocks:
            holding(index, engine, blocks)
        else:
            index.apply(engine.url, Batch(0, 0.0, (), 0))  # publishes, holds nothing
            index.apply(engine.url, Batch(1, 0.0, (Stored((99,), None, tuple(range(16)), 16),), 0))
    chosen = strategy(index).pick(Req(TEXT), [A, B], Loads(**loads))
    assert chosen.instance == winner


def test_falls_back_to_prefix_aware_until_an_engine_publishes() -> None:
    index = KvIndex()
    s = strategy(index)
    s.fallback.record(C.url, TEXT)  # prefix_aware's own guess
    assert s.pick(Req(TEXT), [A, C], Loads()).instance == "c"
    holding(index, A, 4)
    assert s.pick(Req(TEXT), [A, C], Loads()).instance == "a"  # the engine's truth wins
    assert s.fallback.cached_chars(A.url, TEXT) > 0  # picks keep the fallback warm


def test_engines_that_leave_are_dropped_from_the_index() -> None:
    index = KvIndex()
    s = strategy(index)
    holding(index, A, 4)
    s.pick(Req(TEXT), [A, B], Loads())
    s._tracked = {A.url, B.url}  # what the follower would follow
    s.forget({B.url})
    assert index.blocks(A.url) == 0


def test_unknown_tokenizer_is_refused() -> None:
    with pytest.raises(StrategyParamError, match="tokenizer"):
        KvAware.create(StrategyContext(params={"tokenizer": "llama"}))
