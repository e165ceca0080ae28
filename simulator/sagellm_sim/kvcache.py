"""Paged KV cache with an LRU prefix cache, modelled on vLLM V1's block pool.

* The cache holds ``num_blocks`` blocks of ``block_size`` tokens; a block is referenced by the
  running requests that use it (``ref`` count).
* A full prompt block gets a hash chained from its parent block's hash and its token ids, so two
  prompts share a cached block only when everything before it is identical too.
* Blocks whose reference count drops to zero go to the tail of the free queue but keep their
  hash: they are reusable by a later request with the same prefix until allocation evicts them
  from the head of the queue (least recently freed first). Blocks in use are never evicted.
* With ``record_events`` the cache queues vLLM's KV events (``sagellm_sim.kv_events``): one
  ``BlockStored`` per ``store`` run, one ``BlockRemoved`` per evicted cached block and
  ``AllBlocksCleared`` on ``reset``; the engine driver takes them after each step.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from sagellm_sim.kv_events import AllBlocksCleared, BlockRemoved, BlockStored, KvEvent


def block_hashes(token_ids: Sequence[int], block_size: int, salt: str | None = None) -> list[int]:
    """Chained hashes of the full blocks of ``token_ids`` (a partial tail block has none)."""
    parent = hash(("sagellm-sim", salt))
    out = []
    for start in range(0, len(token_ids) - block_size + 1, block_size):
        parent = hash((parent, tuple(token_ids[start : start + block_size])))
        out.append(parent)
    return out


class KVCache:
    """Block allocator plus prefix cache. Not thread-safe; one engine owns one cache."""

    def __init__(
        self, num_blocks: int, block_size: int, enable_prefix_caching: bool,
        record_events: bool = False,
    ) -> None:  # fmt: skip
        if num_blocks < 1 or block_size < 1:
            raise ValueError(f"num_blocks and block_size must be >= 1 ({num_blocks}, {block_size})")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.enable_prefix_caching = enable_prefix_caching
        self._ref = [0] * num_blocks
        self._hash: list[int | None] = [None] * num_blocks
        self._cached: dict[int, int] = {}
        self._free: OrderedDict[int, None] = OrderedDict.fromkeys(range(num_blocks))
        self.events: list[KvEvent] | None = [] if record_events and enable_prefix_caching else None

    def take_events(self) -> list[KvEvent]:
        """The events queued since the last call (empty when not recording)."""
        if not self.events:
            return []
        out, self.events = self.events, []
        return out

    @property
    def num_free(self) -> int:
        return len(self._free)

    @property
    def usage(self) -> float:
        """Fraction of blocks in use (cached-but-free blocks count as free, like vLLM)."""
        return 1.0 - len(self._free) / self.num_blocks

    def blocks_for(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    def match_prefix(self, hashes: Sequence[int]) -> list[int]:
        """Block ids of the longest cached prefix of ``hashes`` (no reference taken)."""
        if not self.enable_prefix_caching:
            return []
        found = []
        for h in hashes:
            block = self._cached.get(h)
            if block is None:
                break
            found.append(block)
        return found

    def acquire(self, block_ids: Sequence[int]) -> None:
        """Take a reference on cached blocks (removing them from the free queue if idle)."""
        for b in block_ids:
            if self._ref[b] == 0:
                del self._free[b]
            self._ref[b] += 1

    def allocate(self, n: int) -> list[int] | None:
        """``n`` fresh blocks, evicting least recently freed cached blocks; None if short."""
        if n > len(self._free):
            return None
        out = []
        for _ in range(n):
            b, _ = self._free.popitem(last=False)
            h = self._hash[b]
            if h is not None:
                self._hash[b] = None
                if self._cached.get(h) == b:
                    del self._cached[h]
                    if self.events is not None:
                        self.events.append(BlockRemoved(h))
            self._ref[b] = 1
            out.append(b)
        return out

    def release(self, block_ids: Sequence[int]) -> None:
        """Drop one reference on each block; tail blocks are queued for eviction first."""
        for b in reversed(block_ids):
            self._ref[b] -= 1
            if self._ref[b] == 0:
                self._free[b] = None
            elif self._ref[b] < 0:
                raise RuntimeError(f"block {b} released more often than acquired")

    def commit(self, block_id: int, block_hash: int) -> None:
        """Record that ``block_id`` now holds the full block identified by ``block_hash``."""
        if self.enable_prefix_caching and block_hash not in self._cached:
            self._cached[block_hash] = block_id
            self._hash[block_id] = block_hash

    def store(
        self, block_ids: Sequence[int], hashes: Sequence[int], parent: int | None,
        token_ids: Sequence[int],
    ) -> None:  # fmt: skip
        """Commit a run of newly full blocks of one request (one ``BlockStored``, as vLLM)."""
        for block_id, block_hash in zip(block_ids, hashes, strict=True):
            self.commit(block_id, block_hash)
        if self.events is not None and hashes:
            self.events.append(
                BlockStored(tuple(hashes), parent, tuple(token_ids), self.block_size)
            )

    def reset(self) -> bool:
        """Forget every cached hash (vLLM's reset_prefix_cache); False while blocks are in use."""
        if len(self._free) < self.num_blocks:
            return False
        self._cached.clear()
        self._hash = [None] * self.num_blocks
        if self.events is not None:
            self.events.append(AllBlocksCleared())
        return True

    @property
    def num_cached(self) -> int:
        return len(self._cached)
