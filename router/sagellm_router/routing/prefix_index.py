"""The router's prefix model of one pool: which prompt prefixes it sent to which endpoint.

Per endpoint, an LRU set of chained block hashes of the prompts routed there (block =
``block_chars`` characters; hash i covers blocks 0..i, so a hit on hash i implies the whole
prefix). One index per pool is shared by everyone who asks "what does this endpoint likely
hold in its prefix cache": the ``prefix_aware`` strategy and the PD orchestrator's uncached
estimate. Its bounds are ``routing.params.prefix_aware``'s ``block_chars``,
``max_blocks_per_endpoint`` and ``max_blocks_per_request``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class PrefixIndexParams:
    block_chars: int = 64
    max_blocks_per_endpoint: int = 100_000
    max_blocks_per_request: int = 256

    def __post_init__(self) -> None:
        if self.block_chars <= 0 or self.max_blocks_per_endpoint <= 0:
            raise ValueError("prefix_aware: block_chars and max_blocks_per_endpoint must be > 0")

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> PrefixIndexParams:
        """The index's own keys out of a strategy's params (the others are the strategy's)."""
        return cls(**{f.name: params[f.name] for f in fields(cls) if f.name in params})


def block_hashes(text: str, block_chars: int, limit: int) -> list[int]:
    """Chained hashes of the full ``block_chars``-character blocks of ``text`` (at most ``limit``).

    Python's own ``hash`` (per-process salted) is enough: the prefix model lives in one router
    process, and it is ~4x cheaper than a keyed digest per block.
    """
    hashes: list[int] = []
    digest = 0
    for start in range(0, min(len(text), block_chars * limit) - block_chars + 1, block_chars):
        digest = hash((digest, text[start : start + block_chars]))
        hashes.append(digest)
    return hashes


class PrefixIndex:
    def __init__(self, params: PrefixIndexParams | None = None) -> None:
        self.params = params or PrefixIndexParams()
        self._cache: dict[str, OrderedDict[int, None]] = {}

    def hashes(self, text: str) -> list[int]:
        p = self.params
        return block_hashes(text, p.block_chars, p.max_blocks_per_request)

    def matched_blocks(self, url: str, hashes: Sequence[int]) -> int:
        cache = self._cache.get(url)
        if not cache:
            return 0
        count = 0
        for digest in hashes:
            if digest not in cache:
                break
            count += 1
        return count

    def cached_chars(self, url: str, text: str) -> int:
        """How many leading characters of ``text`` ``url`` likely holds in its prefix cache."""
        return self.matched_blocks(url, self.hashes(text)) * self.params.block_chars

    def record(self, url: str, hashes: Sequence[int]) -> None:
        """Remember that the prompt with these block ``hashes`` was sent to ``url``."""
        cache = self._cache.setdefault(url, OrderedDict())
        for digest in hashes:
            cache[digest] = None
            cache.move_to_end(digest)
        while len(cache) > self.params.max_blocks_per_endpoint:
            cache.popitem(last=False)

    def forget(self, keep: set[str]) -> None:
        """Drop the prefix model of endpoints that left the pool."""
        for url in [u for u in self._cache if u not in keep]:
            del self._cache[url]
