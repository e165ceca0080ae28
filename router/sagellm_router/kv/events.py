"""Decoding vLLM 0.32's KV-event frames (pure; see docs/simulator.md "KV-cache events").

A message is ``(topic, seq, payload)``: ``seq`` 8 bytes big-endian, ``payload`` msgpack of
``[ts, [event, ...], data_parallel_rank]`` where each event is a map tagged by ``"type"``:
``BlockStored`` / ``BlockRemoved`` / ``AllBlocksCleared``. Unknown event types and extra fields
are ignored (newer vLLM versions add fields); a malformed payload raises ``KvEventError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

BlockHash = int | bytes


class KvEventError(ValueError):
    """A frame that is not a vLLM KV-event message."""


@dataclass(frozen=True, slots=True)
class Stored:
    block_hashes: tuple[BlockHash, ...]
    parent: BlockHash | None
    token_ids: tuple[int, ...]
    block_size: int


@dataclass(frozen=True, slots=True)
class Removed:
    block_hashes: tuple[BlockHash, ...]


@dataclass(frozen=True, slots=True)
class Cleared:
    """AllBlocksCleared: the engine dropped every cached block."""


Event = Stored | Removed | Cleared


@dataclass(frozen=True, slots=True)
class Batch:
    seq: int
    ts: float
    events: tuple[Event, ...]
    dp_rank: int | None


def _event(raw: Any) -> Event | None:
    if not isinstance(raw, dict):
        raise KvEventError(f"an event must be a map, got {type(raw).__name__}")
    kind = raw.get("type")
    try:
        if kind == "BlockStored":
            return Stored(tuple(raw["block_hashes"]), raw["parent_block_hash"],
                          tuple(raw["token_ids"]), int(raw["block_size"]))  # fmt: skip
        if kind == "BlockRemoved":
            return Removed(tuple(raw["block_hashes"]))
    except (KeyError, TypeError) as exc:
        raise KvEventError(f"{kind} event lacks a field: {exc}") from exc
    return Cleared() if kind == "AllBlocksCleared" else None


def decode(frames: list[bytes]) -> Batch:
    """One PUB (or replayed) message: ``[topic, seq, payload]``."""
    if len(frames) != 3 or len(frames[1]) != 8:
        raise KvEventError(f"expected (topic, 8-byte seq, payload), got {len(frames)} frames")
    try:
        raw = msgpack.unpackb(frames[2], use_list=False)  # tuples: the events keep them as is
    except (ValueError, msgpack.UnpackException) as exc:
        raise KvEventError(f"payload is not msgpack: {exc}") from exc
    if not isinstance(raw, tuple) or len(raw) not in (2, 3) or not isinstance(raw[1], tuple):
        raise KvEventError("payload is not a [ts, events, data_parallel_rank] batch")
    events = tuple(e for e in (_event(r) for r in raw[1]) if e is not None)
    rank = raw[2] if len(raw) == 3 else None
    return Batch(int.from_bytes(frames[1], "big"), float(raw[0]), events, rank)
