"""The simulator's tokenizer approximation, shared by the simulator and the router (pure).

The text is split into pieces — a run of up to 6 letters, up to 3 digits or one other non-space
character, each with its optional leading space, or a run of whitespace — and every piece is
one token. Typical English prose comes out at ~1.2 tokens per word (~4.2 characters per token),
close to Llama-3's BPE. Token ids are CRC32 of the piece modulo the vocabulary size, so equal
text gives equal ids in every process: the simulator's prefix cache keys on them, and a router
that tokenizes the same way finds the blocks a simulated engine reports in its KV events.
"""

from __future__ import annotations

import re
import zlib

VOCAB_SIZE = 128_256  # Llama-3 vocabulary size
PIECE = re.compile(r" ?[A-Za-z]{1,6}| ?[0-9]{1,3}| ?[^\sA-Za-z0-9]|\s+")


def tokenize(text: str) -> list[int]:
    """Token ids of ``text``."""
    crc = zlib.crc32
    return [crc(p.encode()) % VOCAB_SIZE for p in PIECE.findall(text)]


def count_tokens(text: str) -> int:
    return len(PIECE.findall(text))
