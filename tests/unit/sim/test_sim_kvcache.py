"""KV block pool and prefix cache: hashing, sharing, LRU eviction, capacity."""

from __future__ import annotations

import pytest

from sagellm_sim.kvcache import KVCache, block_hashes


@pytest.mark.parametrize(
    ("a", "b", "shared"),
    [
        (list(range(64)), list(range(64)), 4),  # identical prompts share every full block
        (list(range(64)), [*range(40), 999, *range(41, 64)], 2),  # diverge inside block 2
        ([7, *range(63)], list(range(64)), 0),  # diverge in the first token
        (list(range(20)), list(range(64)), 1),  # only full blocks are hashed
    ],
)
def test_block_hashes_are_chained(a: list[int], b: list[int], shared: int) -> None:
    ha, hb = block_hashes(a, 16), block_hashes(b, 16)
    common = next((i for i, (x, y) in enumerate(zip(ha, hb, strict=False)) if x != y), None)
    assert (min(len(ha), len(hb)) if common is None else common) == shared


def test_same_block_after_different_prefix_gets_a_different_hash() -> None:
    tail = list(range(16))
    assert block_hashes([1] * 16 + tail, 16)[1] != block_hashes([2] * 16 + tail, 16)[1]


def test_cache_salt_separates_identical_prompts() -> None:
    ids = list(range(32))
    assert block_hashes(ids, 16, "tenant-a") != block_hashes(ids, 16, "tenant-b")


def test_freed_blocks_stay_matchable_until_evicted_least_recently_freed_first() -> None:
    cache = KVCache(num_blocks=4, block_size=2, enable_prefix_caching=True)
    a = cache.allocate(2)
    b = cache.allocate(2)
    assert a is not None
    assert b is not None
    for blk, h in zip(a + b, [10, 11, 20, 21], strict=True):
        cache.commit(blk, h)
    cache.release(a)
    cache.release(b)
    assert cache.usage == 0.0
    assert cache.match_prefix([10, 11]) == a
    fresh = cache.allocate(2)  # evicts the two blocks freed first: request a's
    assert fresh is not None
    assert set(fresh) == set(a)
    assert cache.match_prefix([10, 11]) == []
    assert cache.match_prefix([20, 21]) == b


def test_blocks_in_use_are_never_evicted() -> None:
    cache = KVCache(num_blocks=3, block_size=4, enable_prefix_caching=True)
    held = cache.allocate(1)
    assert held is not None
    cache.commit(held[0], 42)
    assert cache.allocate(3) is None  # only 2 free blocks
    assert cache.allocate(2) is not None
    assert cache.match_prefix([42]) == held


def test_acquire_takes_cached_block_out_of_the_free_queue() -> None:
    cache = KVCache(num_blocks=2, block_size=4, enable_prefix_caching=True)
    blk = cache.allocate(1)
    assert blk is not None
    cache.commit(blk[0], 7)
    cache.release(blk)
    assert cache.num_free == 2
    cache.acquire(cache.match_prefix([7]))
    assert cache.num_free == 1
    assert cache.usage == 0.5


def test_prefix_caching_disabled_never_matches() -> None:
    cache = KVCache(num_blocks=2, block_size=4, enable_prefix_caching=False)
    blk = cache.allocate(1)
    assert blk is not None
    cache.commit(blk[0], 7)
    assert cache.match_prefix([7]) == []


def test_double_release_is_an_error() -> None:
    cache = KVCache(num_blocks=1, block_size=4, enable_prefix_caching=True)
    blk = cache.allocate(1)
    assert blk is not None
    cache.release(blk)
    with pytest.raises(RuntimeError, match="released more often"):
        cache.release(blk)


@pytest.mark.parametrize(("blocks", "size"), [(0, 16), (4, 0)])
def test_bad_geometry_is_rejected(blocks: int, size: int) -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        KVCache(blocks, size, True)
