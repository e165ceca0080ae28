"""Which engine holds which prompt prefix, from the engines' own KV events (pure, no I/O).

Engines' block hashes cannot be recomputed by the router (vLLM seeds them per process), so the
index keys every block by its own chained hash of token ids, computed the same way for stored
blocks (from ``BlockStored.token_ids``, chained on the parent block) and for a request's tokens;
per engine it maps the engine's hash to that key, to apply later ``BlockRemoved`` events.

Memory is bounded: each engine keeps at most ``max_blocks_per_engine`` blocks; past that its
least recently stored blocks are dropped from the index (the engine may still hold them: the
index then under-reports, which costs a cache hit, never correctness).

Sequence numbers (``accept``, for messages of the live PUB stream, which never repeats one)
detect what the subscriber missed: the next number is applied; a jump forward is a gap (replay
it, or ``clear_engine`` and start over); a number that does not advance means the publisher
restarted (its sequence starts at 0 again), so the engine's old blocks are forgotten.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from sagellm_router.kv.events import Batch, BlockHash, Cleared, Removed, Stored

ROOT = 0


class Seq(Enum):
    APPLY = "apply"  # the expected next batch (or the first one seen)
    GAP = "gap"  # batches are missing before this one
    RESTART = "restart"  # the publisher started over: the engine's old blocks are gone


def chain(parent: int, tokens: Sequence[int]) -> int:
    """The index's key of a block: its tokens chained on its parent's key."""
    return hash((parent, tuple(tokens)))


@dataclass
class _Engine:
    bit: int  # this engine's bit in the index's holder masks
    block_size: int | None = None
    last_seq: int | None = None
    by_hash: dict[BlockHash, int] = field(default_factory=dict)
    lru: OrderedDict[int, BlockHash] = field(default_factory=OrderedDict)


class KvIndex:
    """Block key -> engines that hold it, fed by each engine's event batches."""

    def __init__(self, max_blocks_per_engine: int = 65_536) -> None:
        if max_blocks_per_engine < 1:
            raise ValueError("max_blocks_per_engine must be >= 1")
        self.max_blocks_per_engine = max_blocks_per_engine
        self._engines: dict[str, _Engine] = {}
        self._holders: dict[int, int] = {}  # block key -> bit mask of the engines holding it
        self._free_bits: list[int] = []
        self._next_bit = 1

    def _state(self, engine: str) -> _Engine:
        state = self._engines.get(engine)
        if state is None:
            if self._free_bits:  # a bit of an engine that left
                bit = self._free_bits.pop()
            else:
                bit, self._next_bit = self._next_bit, self._next_bit << 1
            state = self._engines[engine] = _Engine(bit)
        return state

    # -- feeding ---------------------------------------------------------------------------
    def accept(self, engine: str, seq: int) -> Seq:
        """Classify ``seq`` against the last applied batch of ``engine`` (does not apply)."""
        last = self._state(engine).last_seq
        if last is None or seq == last + 1:
            return Seq.APPLY
        return Seq.GAP if seq > last + 1 else Seq.RESTART

    def apply(self, engine: str, batch: Batch) -> None:
        """Apply one batch (call after ``accept`` said APPLY, or after handling GAP/RESTART)."""
        state = self._state(engine)
        for event in batch.events:
            if isinstance(event, Stored):
                self._stored(state, event)
            elif isinstance(event, Removed):
                for block_hash in event.block_hashes:
                    self._drop(state, state.by_hash.get(block_hash))
            elif isinstance(event, Cleared):
                self.clear_engine(engine)
        state.last_seq = batch.seq

    def _stored(self, state: _Engine, event: Stored) -> None:
        size = event.block_size
        if event.parent is None:
            parent = ROOT
        elif (known := state.by_hash.get(event.parent)) is not None:
            parent = known
        else:
            return  # the parent was missed or dropped: these blocks are unreachable by prefix
        state.block_size = size
        by_hash, lru, holders, bit = state.by_hash, state.lru, self._holders, state.bit
        blocks = zip(*[iter(event.token_ids)] * size, strict=False)  # full blocks, cut in C
        for block_hash, block in zip(event.block_hashes, blocks, strict=False):
            parent = hash((parent, block))  # chain(), inlined
            if (old := by_hash.get(block_hash)) is not None:  # the engine reused the hash
                self._drop(state, old)
            by_hash[block_hash] = parent
            lru[parent] = block_hash
            lru.move_to_end(parent)
            holders[parent] = holders.get(parent, 0) | bit
        while len(state.lru) > self.max_blocks_per_engine:
            self._drop(state, next(iter(state.lru)))

    def _drop(self, state: _Engine, key: int | None) -> None:
        if key is None or key not in state.lru:
            return
        state.by_hash.pop(state.lru.pop(key), None)
        mask = self._holders.get(key, 0) & ~state.bit
        if mask:
            self._holders[key] = mask
        else:
            self._holders.pop(key, None)

    def clear_engine(self, engine: str) -> None:
        """Forget every block of ``engine`` (cleared cache, restart, or an unrecoverable gap)."""
        state = self._engines.get(engine)
        if state is None:
            return
        for key in list(state.lru):
            self._drop(state, key)

    def forget_seq(self, engine: str) -> None:
        """Accept the next batch whatever its number (after a restart or a resync)."""
        state = self._engines.get(engine)
        if state is not None:
            state.last_seq = None

    def drop_engine(self, engine: str) -> None:
        """``engine`` left the pool: forget it entirely."""
        self.clear_engine(engine)
        state = self._engines.pop(engine, None)
        if state is not None:
            self._free_bits.append(state.bit)

    # -- reading ---------------------------------------------------------------------------
    def engines(self) -> list[str]:
        return list(self._engines)

    def block_size(self, engine: str) -> int | None:
        state = self._engines.get(engine)
        return None if state is None else state.block_size

    def blocks(self, engine: str) -> int:
        state = self._engines.get(engine)
        return 0 if state is None else len(state.lru)

    def last_seq(self, engine: str) -> int | None:
        state = self._engines.get(engine)
        return None if state is None else state.last_seq

    def matched(
        self, tokens: Sequence[int], block_size: int, limit: int, engines: Sequence[str]
    ) -> dict[str, int]:
        """For each engine, how many leading full blocks of ``tokens`` (at most ``limit``) it
        holds; blocks are keyed (``chain``) only as far as some engine still holds them."""
        counts = dict.fromkeys(engines, 0)
        known = self._engines
        bits = {state.bit: e for e in engines if (state := known.get(e)) is not None}
        alive, get = sum(bits), self._holders.get
        parent, depth = ROOT, 0
        # zip over one iterator, block_size times: the full blocks as tuples, cut in C
        for block in zip(*[iter(tokens[: block_size * limit])] * block_size, strict=False):
            if not alive:
                break
            parent = hash((parent, block))  # chain(), inlined
            held = get(parent, 0)
            if lost := alive & ~held:
                for bit, engine in bits.items():
                    if lost & bit:
                        counts[engine] = depth
                alive &= held
            if alive:
                depth += 1
        for bit, engine in bits.items():
            if alive & bit:
                counts[engine] = depth
        return counts
