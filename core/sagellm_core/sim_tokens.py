"""The simulator's tokenizer approximation and chat rendering, shared by the simulator and the
router (pure).

The text is split into pieces — a run of up to 6 letters, up to 3 digits or one other non-space
character, each with its optional leading space, or a run of whitespace — and every piece is
one token. Typical English prose comes out at ~1.2 tokens per word (~4.2 characters per token),
close to Llama-3's BPE. Token ids are CRC32 of the piece modulo the vocabulary size, so equal
text gives equal ids in every process: the simulator's prefix cache keys on them, and a router
that tokenizes the same way finds the blocks a simulated engine reports in its KV events.

Chat requests are rendered with one Llama-3-like template (``render_chat``) before tokenizing;
``chat_tokens`` takes the request's ``messages`` as JSON, so the simulator (which validated
them) and the router (which routes on them) turn a conversation into the same token ids.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence

VOCAB_SIZE = 128_256  # Llama-3 vocabulary size
PIECE = re.compile(r" ?[A-Za-z]{1,6}| ?[0-9]{1,3}| ?[^\sA-Za-z0-9]|\s+")


def tokenize(text: str) -> list[int]:
    """Token ids of ``text``."""
    crc = zlib.crc32
    return [crc(p.encode()) % VOCAB_SIZE for p in PIECE.findall(text)]


def count_tokens(text: str) -> int:
    return len(PIECE.findall(text))


def chunks(text: str, size: int = 256) -> list[str]:
    """``text`` cut into pieces of about ``size`` characters whose token ids, concatenated, are
    ``tokenize(text)``: every cut is at a space between two non-space characters, where a piece
    always starts whatever precedes it (the space leads the next word, digit or symbol). Equal
    prefixes are cut alike, so a caller may cache the ids of each chunk."""
    out, start, n = [], 0, len(text)
    while n - start > size:
        cut = text.find(" ", start + size)
        while cut != -1 and (text[cut - 1].isspace() or cut + 1 >= n or text[cut + 1].isspace()):
            cut = text.find(" ", cut + 1)
        if cut == -1:
            break
        out.append(text[start:cut])
        start = cut
    out.append(text[start:])
    return out


def render_chat(turns: Sequence[tuple[str, str]]) -> str:
    """The prompt a conversation of ``(role, text)`` turns is turned into, with the assistant's
    generation prompt at the end."""
    parts = [f"<|start|>{role}\n{content}<|end|>\n" for role, content in turns]
    parts.append("<|start|>assistant\n")
    return "".join(parts)


def message_text(content: object) -> str:
    """A chat message's text: its string content, or its ``text`` parts joined (others, such
    as images, carry no text); ``None`` is empty."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = (
            p.get("text") for p in content if isinstance(p, Mapping) and p.get("type") == "text"
        )
        return "".join(t for t in texts if isinstance(t, str))
    return ""


def chat_prompt(messages: Sequence[Mapping[str, object]]) -> str:
    """The prompt text of a chat request's ``messages`` (OpenAI JSON)."""
    return render_chat([(str(m.get("role")), message_text(m.get("content"))) for m in messages])


def chat_tokens(messages: Sequence[Mapping[str, object]]) -> list[int]:
    """Token ids of a chat request's ``messages``, as the simulator prefills them."""
    return tokenize(chat_prompt(messages))
