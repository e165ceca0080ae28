"""KV-cache events as vLLM 0.32 publishes them (``--kv-events-config``), checked against
``vllm/distributed/kv_events.py`` and a real engine's frames (docs/simulator.md "KV-cache events").

Wire format: each ZMQ PUB message has three frames: the topic, an 8-byte big-endian sequence
number (from 0 per publisher, so a restart shows as the sequence going back) and a msgpack
payload, which is what msgspec encodes for vLLM's classes:

* ``KVEventBatch`` (``array_like``): ``[ts, [event, ...], data_parallel_rank]``;
* each event is a map tagged with ``"type"`` (its class name), fields in declaration order,
  fields left at their default omitted: ``BlockStored`` (``block_hashes``,
  ``parent_block_hash``, ``token_ids``, ``block_size``, ``lora_id``, ``medium``, ``lora_name``,
  ``extra_keys``, ``group_idx``, ``kv_cache_spec_kind``), ``BlockRemoved`` (``block_hashes``,
  ``medium``, ``group_idx``; one event per evicted block) and ``AllBlocksCleared``.

Block hashes are unsigned 64-bit integers, vLLM's default (``VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES``
is 1), or 32-byte digests with that variable set to 0. Like vLLM's, they are not meant to be
recomputed by a consumer: the simulator derives them from its own chained block hashes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from typing import Any

import msgpack

from sagellm_sim.jsonflag import json_object

MEDIUM_GPU = "GPU"
END_SEQ = (-1).to_bytes(8, "big", signed=True)
PUBLISHERS = ("null", "zmq")


@dataclass(frozen=True)
class KvEventsConfig:
    """vLLM's ``KVEventsConfig`` (same JSON keys and defaults)."""

    enable_kv_cache_events: bool = False
    publisher: str = ""  # "" -> "zmq" when enabled, else "null" (vLLM's __post_init__)
    endpoint: str = "tcp://*:5557"
    replay_endpoint: str | None = None
    buffer_steps: int = 10_000
    hwm: int = 100_000
    max_queue_size: int = 100_000
    topic: str = ""

    @classmethod
    def parse(cls, text: str) -> KvEventsConfig:
        raw = json_object("--kv-events-config", text)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(
                f"--kv-events-config: unknown key(s) {unknown}; known: {sorted(known)}"
            )
        return cls(**raw)

    def __post_init__(self) -> None:
        if not self.publisher:
            object.__setattr__(self, "publisher", "zmq" if self.enable_kv_cache_events else "null")
        if self.publisher not in PUBLISHERS:
            raise ValueError(f"--kv-events-config: publisher must be one of {PUBLISHERS}")
        for name in ("buffer_steps", "hwm", "max_queue_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"--kv-events-config: {name} must be an integer >= 1")
        for name in ("endpoint", "topic"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"--kv-events-config: {name} must be a string")

    @property
    def publishes(self) -> bool:
        return self.enable_kv_cache_events and self.publisher == "zmq"


@dataclass(frozen=True)
class BlockStored:
    """Full blocks newly cached by one request (``block_hashes`` are the simulator's ints)."""

    block_hashes: tuple[int, ...]
    parent_block_hash: int | None
    token_ids: tuple[int, ...]
    block_size: int


@dataclass(frozen=True)
class BlockRemoved:
    block_hash: int


@dataclass(frozen=True)
class AllBlocksCleared:
    """Every cached block was dropped (vLLM publishes it with the next engine step)."""


KvEvent = BlockStored | BlockRemoved | AllBlocksCleared


def external_hash(block_hash: int, as_int: bool) -> bytes | int:
    """The published form of a block hash: a 32-byte digest, or its low 64 bits as vLLM does."""
    digest = hashlib.sha256(block_hash.to_bytes(16, "big", signed=True)).digest()
    return int.from_bytes(digest, "big") & ((1 << 64) - 1) if as_int else digest


def event_wire(event: KvEvent, int_hashes: bool) -> dict[str, Any]:
    """One event as msgspec encodes vLLM's tagged struct (defaults omitted)."""
    if isinstance(event, BlockStored):
        parent = event.parent_block_hash
        return {
            "type": "BlockStored",
            "block_hashes": [external_hash(h, int_hashes) for h in event.block_hashes],
            "parent_block_hash": None if parent is None else external_hash(parent, int_hashes),
            "token_ids": list(event.token_ids), "block_size": event.block_size,
            "lora_id": None, "medium": MEDIUM_GPU, "lora_name": None,
            "extra_keys": [None] * len(event.block_hashes), "group_idx": 0,
            "kv_cache_spec_kind": "full_attention",
        }  # fmt: skip
    if isinstance(event, BlockRemoved):
        removed = external_hash(event.block_hash, int_hashes)
        return {"type": "BlockRemoved", "block_hashes": [removed], "medium": MEDIUM_GPU,
                "group_idx": 0}  # fmt: skip
    return {"type": "AllBlocksCleared"}


def encode_batch(ts: float, events: list[KvEvent], dp_rank: int, int_hashes: bool) -> bytes:
    """The msgpack payload of one ``KVEventBatch``."""
    wire = [float(ts), [event_wire(e, int_hashes) for e in events], dp_rank]
    payload: bytes = msgpack.packb(wire, use_bin_type=True)
    return payload


def offset_endpoint_port(endpoint: str | None, dp_rank: int) -> str | None:
    """vLLM's per-DP-rank endpoint: tcp port + rank (0 stays 0), inproc gets ``_dp<rank>``."""
    if not endpoint or dp_rank == 0:
        return endpoint
    if "inproc" in endpoint:
        return f"{endpoint}_dp{dp_rank}"
    if "tcp" in endpoint:
        base, _, port = endpoint.rpartition(":")
        return endpoint if int(port) == 0 else f"{base}:{int(port) + dp_rank}"
    raise ValueError("Invalid endpoint: must contain 'inproc' or 'tcp'")
