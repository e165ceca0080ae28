"""The diagnostic ``kv_aware`` variants: chat text as the engine tokenizes it, recent own picks."""

from __future__ import annotations

import random
from typing import Any

import pytest

from sagellm_core.sim_tokens import tokenize
from sagellm_router.bench.kv_variants import KvAwareRecent, Recent, RecentParams, engine_text
from sagellm_router.kv.events import Batch, Stored
from sagellm_router.routing.prefix_aware import block_hashes
from sagellm_router.types import Endpoint
from sagellm_router.validation import CHAT, ParsedRequest
from sagellm_sim.protocol import ChatMessage, chat_prompt_ids

MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "Tenant 4 rules: be brief and exact."},
    {"role": "user", "content": [{"type": "text", "text": "what is "},
                                 {"type": "image_url"}, {"type": "text", "text": "a block?"}]},
    {"role": "assistant", "content": None},
]  # fmt: skip


def test_engine_text_tokenizes_as_the_simulator_does() -> None:
    request = ParsedRequest(CHAT, "m", False, {"model": "m", "messages": MESSAGES})
    expected = chat_prompt_ids([ChatMessage.model_validate(m) for m in MESSAGES])
    assert tokenize(engine_text(request)) == expected
    assert tokenize(request.prompt_text) != expected  # the router's own flattening differs


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
    strategy = KvAwareRecent(RecentParams(), random.Random(0), clock)
    strategy._follow = False  # no ZMQ: the index is fed by hand
    for url in (a.url, b.url):
        strategy.index.apply(url, Batch(0, 0.0, (Stored((9,), None, tuple(range(16)), 16),), None))
    text = "<|start|>system\n" + " alpha beta" * 100
    assert strategy._choose(text, [a, b], Loads({a.url: 1.0})) is b
    assert strategy._choose(text, [a, b], Loads({b.url: 3.0})) is b  # 3 < 0 + 32
    clock.now += 3.0
    assert strategy._choose(text, [a, b], Loads({b.url: 3.0})) is a
    assert block_hashes(text, 64, 1024)  # the prompt has full character blocks
