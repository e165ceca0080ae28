"""One token counter per model, used by every caller: admission's prompt size and the PD
decision's uncached tokens both change when the counter is swapped (an in-process engine's
tokenizer replaces core's estimate)."""

from __future__ import annotations

import orjson
from pipeline_fakes import PARAMS, Answer, ScriptedUpstream, complete, pd_pool, state_with

from sagellm_core.tokens import TokenCounter, estimate_tokens
from sagellm_router.downstream import Collector
from sagellm_router.pd.threshold import ThresholdTuner
from sagellm_router.pipeline import Job, handle
from sagellm_router.proxy import Exchange
from sagellm_router.validation import parse_body

PROMPT = "The quick brown fox jumps over the lazy dog near the river bank. " * 3  # 195 chars


def chars(text: str) -> int:
    return len(text)


async def admitted_tokens(counter: TokenCounter | None) -> int:
    state = state_with({"name": "g", "model": "m", "endpoints": [{"url": "http://a"}]})
    if counter is not None:
        state.tokenizers["m"] = counter
    seen: list[int] = []

    def on_admitted(ex: Exchange) -> None:
        assert ex.ticket is not None
        seen.append(ex.ticket.meta.prompt_tokens)

    raw = orjson.dumps({"model": "m", "prompt": PROMPT, "max_tokens": 4})
    job = Job(parse_body(raw, "/v1/completions"), raw, {}, on_admitted=on_admitted)
    await handle(state, ScriptedUpstream(), job, Collector())
    return seen[0]


async def test_admission_counts_prompt_tokens_with_the_models_counter() -> None:
    assert await admitted_tokens(None) == estimate_tokens(PROMPT)
    assert await admitted_tokens(chars) == len(PROMPT) != estimate_tokens(PROMPT)


class Recording(ThresholdTuner):
    def __init__(self) -> None:
        super().__init__(threshold=1e9)  # always direct: only the inputs matter here
        self.seen: list[int] = []

    def decide(self, uncached: int) -> bool:
        self.seen.append(uncached)
        return super().decide(uncached)


async def pd_uncached(counter: TokenCounter | None) -> list[int]:
    """Uncached tokens of the same prompt sent twice (the second time the decode instance
    likely holds its first 192 characters: three 64-character blocks)."""
    state = state_with(pd_pool())
    if counter is not None:
        state.tokenizers["m"] = counter
    tuner = state.runtimes["pd"].tuner = Recording()
    upstream = ScriptedUpstream({"http://p": Answer(body=PARAMS)})
    for _ in range(2):
        assert (await complete(state, upstream, PROMPT)).status == 200
    return tuner.seen


async def test_pd_compares_tokens_from_the_same_counter() -> None:
    assert await pd_uncached(None) == [
        estimate_tokens(PROMPT),
        estimate_tokens(PROMPT) - estimate_tokens(PROMPT[:192]),
    ]
    assert await pd_uncached(chars) == [len(PROMPT), len(PROMPT) - 192]
