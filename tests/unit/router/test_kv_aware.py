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
    return KvAware(KvAwareParams(miss_cost=8, balance_abs=4, **params), random.Random(0), index)


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


def test_engines_that_leave_are_dropped_from_the_index() -> None:
    index = KvIndex()
    s = strategy(index)
    holding(index, A, 4)
    index.apply(f"{A.url}|dp1", Batch(0, 0.0, (Stored((7,), None, tuple(TOKENS[:16]), 16),), 1))
    s.pick(Req(TEXT), [A, B], Loads())
    s.forget({B.url})
    assert index.blocks(A.url) == index.blocks(f"{A.url}|dp1") == 0
    assert index.engines() == []


def test_picks_are_counted_by_what_decided_them() -> None:
    index = KvIndex()
    s = strategy(index)
    s.pick(Req(TEXT), [A, B], Loads())
    holding(index, A, 4)
    s.pick(Req(TEXT), [A, B], Loads())
    s.pick(Req("too short for a block"), [A, B], Loads())
    assert s.picks == {"kv": 1, "fallback": 2}


@dataclass
class Body:
    """What the router's ParsedRequest carries: its route and JSON body."""

    path: str
    body: dict[str, object]
    session_key: str | None = None

    @property
    def prompt_text(self) -> str:
        return str(self.body)


MESSAGES = [{"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": TEXT}]}]  # fmt: skip


def test_chat_requests_are_tokenized_as_the_simulator_renders_them() -> None:
    """The router and the simulator turn messages into the same ids (one shared function)."""
    from sagellm_sim.protocol import ChatMessage, chat_prompt_ids

    engine_ids = chat_prompt_ids([ChatMessage.model_validate(m) for m in MESSAGES])
    index = KvIndex()
    blocks = len(engine_ids) // 16
    stored = Stored(tuple(range(1, blocks + 1)), None, tuple(engine_ids[: 16 * blocks]), 16)
    index.apply(B.url, Batch(0, 0.0, (stored,), 0))
    s = strategy(index)
    chat = Body("/v1/chat/completions", {"model": "m", "messages": MESSAGES})
    assert s.tokens(chat) == engine_ids
    assert s.cached_share(engine_ids, [A, B]) == {B.url: 1.0}
    assert all(s.pick(chat, [A, B], Loads()).instance == "b" for _ in range(5))
    assert s.picks["kv"] == 5


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/v1/completions", {"prompt": TEXT}, TOKENS),
        ("/v1/completions", {"prompt": [TEXT, "other"]}, TOKENS),  # the first prompt decides
        ("/v1/completions", {"prompt": [5, 6, 7]}, [5, 6, 7]),  # token ids as they are
        ("/v1/completions", {"prompt": [[5, 6], [7]]}, [5, 6]),
        ("/v1/embeddings", {"input": TEXT}, TOKENS),
        ("/v1/chat/completions", {"messages": []}, None),
        ("/v1/chat/completions", {"messages": ["not a map"]}, None),
        ("/v1/completions", {"prompt": None}, None),
    ],
)  # fmt: skip
def test_request_tokens(path: str, body: dict[str, object], expected: list[int] | None) -> None:
    assert strategy(KvIndex()).tokens(Body(path, body)) == expected


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"tokenizer": "llama"}, "expected one of"),
        ({"tokenizer": "hf"}, "tokenizer_path is required"),
        ({"tokenizer": "sim", "tokenizer_path": "/m"}, "only used with tokenizer 'hf'"),
        ({"tokenizer": "hf", "tokenizer_path": "/no/such/model"},
         "cannot load a tokenizer|transformers"),
    ],
)  # fmt: skip
def test_bad_tokenizer_params_are_refused(params: dict[str, str], match: str) -> None:
    with pytest.raises(StrategyParamError, match=match):
        KvAware.create(StrategyContext(params=params))
