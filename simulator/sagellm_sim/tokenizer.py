"""A deterministic tokenizer approximation and deterministic generated text.

Tokenization: the text is split into pieces by ``_PIECE`` — a run of up to 6 letters, up to 3
digits or one other non-space character, each with its optional leading space, or a run of
whitespace. Every piece is one token. Typical English prose comes out at ~1.2 tokens per word
(~4.2 characters per token), close to Llama-3's BPE. Token ids are CRC32 of the piece modulo the
vocabulary size, so equal text gives equal ids in every process (prefix caching keys on them).

Generation: each output token is one word from ``WORDS`` (each is a single piece above, so
re-tokenizing generated text gives back the same count). The word sequence comes from a PRNG
seeded with the simulator seed, the request's ``seed`` (if any) and a digest of the prompt
token ids, so the same request on the same simulator yields the same text.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Sequence

VOCAB_SIZE = 128_256  # Llama-3 vocabulary size
_PIECE = re.compile(r" ?[A-Za-z]{1,6}| ?[0-9]{1,3}| ?[^\sA-Za-z0-9]|\s+")

_WORD_TEXT = """
the of and to in is was for on that with as it by at from his an were are which this be or has
had not but first one their its new after who they have her she two been other when there all
during into school time may years more most only over city some world would where later up such
used many can state about out known under made while year team then three both film since well
river group part found early people each season began area few last long large near local small
light model token cache block queue route fast slow node pool batch
"""
WORDS: tuple[str, ...] = tuple(_WORD_TEXT.split())


def tokenize(text: str) -> list[int]:
    """Token ids of ``text`` (see module docstring)."""
    crc = zlib.crc32
    return [crc(p.encode()) % VOCAB_SIZE for p in _PIECE.findall(text)]


def count_tokens(text: str) -> int:
    return len(_PIECE.findall(text))


def render_chat(messages: Sequence[tuple[str, str]]) -> str:
    """The prompt a chat request is turned into (a Llama-3-like template)."""
    parts = [f"<|start|>{role}\n{content}<|end|>\n" for role, content in messages]
    parts.append("<|start|>assistant\n")
    return "".join(parts)


class TextGenerator:
    """Deterministic output words for one request."""

    def __init__(self, sim_seed: int, request_seed: int | None, prompt_ids: Sequence[int]) -> None:
        digest = zlib.crc32(repr(tuple(prompt_ids[-256:])).encode()) ^ len(prompt_ids)
        self._rng = random.Random(f"{sim_seed}/{request_seed}/{digest}")
        self.natural_length = 16 + self._rng.randrange(496)

    def next_words(self, n: int) -> list[str]:
        words, choice = WORDS, self._rng.choice
        return [" " + choice(words) for _ in range(n)]
