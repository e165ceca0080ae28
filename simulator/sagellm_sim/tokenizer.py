"""A deterministic tokenizer approximation and deterministic generated text.

Tokenization (``tokenize``, ``count_tokens``) and chat rendering (``render_chat``) live in
``sagellm_core.sim_tokens``, shared with the router's ``kv_aware`` strategy: every piece of
text (a short letter or digit run, or one other character) is one token whose id is a CRC32 of
the piece.

Generation: each output token is one word from ``WORDS`` (each is a single piece above, so
re-tokenizing generated text gives back the same count). The word sequence comes from a PRNG
seeded with the simulator seed, the request's ``seed`` (if any) and a digest of the prompt
token ids, so the same request on the same simulator yields the same text.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence

from sagellm_core.sim_tokens import VOCAB_SIZE, count_tokens, render_chat, tokenize

__all__ = ["VOCAB_SIZE", "WORDS", "TextGenerator", "count_tokens", "render_chat", "tokenize"]

_WORD_TEXT = """
the of and to in is was for on that with as it by at from his an were are which this be or has
had not but first one their its new after who they have her she two been other when there all
during into school time may years more most only over city some world would where later up such
used many can state about out known under made while year team then three both film since well
river group part found early people each season began area few last long large near local small
light model token cache block queue route fast slow node pool batch
"""
WORDS: tuple[str, ...] = tuple(_WORD_TEXT.split())


class TextGenerator:
    """Deterministic output words for one request."""

    def __init__(self, sim_seed: int, request_seed: int | None, prompt_ids: Sequence[int]) -> None:
        digest = zlib.crc32(repr(tuple(prompt_ids[-256:])).encode()) ^ len(prompt_ids)
        self._rng = random.Random(f"{sim_seed}/{request_seed}/{digest}")
        self.natural_length = 16 + self._rng.randrange(496)

    def next_words(self, n: int) -> list[str]:
        words, choice = WORDS, self._rng.choice
        return [" " + choice(words) for _ in range(n)]
