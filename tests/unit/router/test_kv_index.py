"""The router's KV-event index: decoding vLLM frames, store/remove/clear, bounds, gaps, restarts."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sagellm_router.kv.events import Batch, Cleared, KvEventError, Removed, Stored, decode
from sagellm_router.kv.index import KvIndex, Seq

BS = 4
PROMPT = list(range(100, 116))  # four full blocks of 4


def stored(hashes: list[int], parent: int | None, tokens: list[int]) -> Stored:
    return Stored(tuple(hashes), parent, tuple(tokens), BS)


def batch(seq: int, *events: Stored | Removed | Cleared) -> Batch:
    return Batch(seq, 0.0, tuple(events), 0)


def test_decodes_a_vllm_frame_and_ignores_unknown_fields_and_types() -> None:
    payload = msgpack.packb([1.5, [
        {"type": "BlockStored", "block_hashes": [7], "parent_block_hash": None,
         "token_ids": [1, 2, 3, 4], "block_size": 4, "lora_id": None, "medium": "GPU",
         "lora_name": None, "extra_keys": [None], "group_idx": 0, "kv_cache_spec_kind": "x"},
        {"type": "BlockRemoved", "block_hashes": [7], "medium": "GPU", "group_idx": 0},
        {"type": "SomethingNew"}, {"type": "AllBlocksCleared"},
    ], 0])  # fmt: skip
    got = decode([b"kv", (3).to_bytes(8, "big"), payload])
    assert got == Batch(3, 1.5, (Stored((7,), None, (1, 2, 3, 4), 4), Removed((7,)), Cleared()), 0)


@pytest.mark.parametrize(
    "frames",
    [[b"kv", b"\x00" * 8], [b"kv", b"\x00", b"\x90"], [b"", b"\x00" * 8, b"\xc1"],
     [b"", b"\x00" * 8, msgpack.packb([1.0, [{"type": "BlockStored"}], 0])]],
)  # fmt: skip
def test_malformed_frames_raise(frames: list[bytes]) -> None:
    with pytest.raises(KvEventError):
        decode(frames)


def test_stored_chain_matches_the_request_prefix_per_engine() -> None:
    index = KvIndex()
    index.apply("a", batch(0, stored([1, 2], None, PROMPT[:8])))
    index.apply("b", batch(0, stored([9, 8, 7, 6], None, PROMPT)))
    index.apply("a", batch(1, stored([3], 2, PROMPT[8:12])))  # continues a's chain
    assert index.matched(PROMPT, BS, 64, ["a", "b", "c"]) == {"a": 3, "b": 4, "c": 0}
    other = [*PROMPT[:4], 0, 0, 0, 0]
    assert index.matched(other, BS, 64, ["a", "b"]) == {"a": 1, "b": 1}


def test_removed_blocks_and_cleared_engines_stop_matching() -> None:
    index = KvIndex()
    index.apply("a", batch(0, stored([1, 2, 3], None, PROMPT[:12])))
    index.apply("a", batch(1, Removed((2,))))
    assert index.matched(PROMPT, BS, 64, ["a"]) == {"a": 1}
    index.apply("b", batch(0, stored([1], None, PROMPT[:4])))
    index.apply("a", batch(2, Cleared()))
    assert index.matched(PROMPT, BS, 64, ["a", "b"]) == {"a": 0, "b": 1}


def test_a_block_whose_parent_is_unknown_is_not_indexed() -> None:
    index = KvIndex()
    index.apply("a", batch(0, stored([5], 4, PROMPT[4:8])))  # parent 4 was never seen
    assert index.blocks("a") == 0


def test_memory_is_bounded_per_engine_dropping_the_oldest_blocks() -> None:
    index = KvIndex(max_blocks_per_engine=3)
    index.apply("a", batch(0, stored([1, 2, 3, 4], None, PROMPT)))
    assert index.blocks("a") == 3
    assert index.matched(PROMPT, BS, 64, ["a"]) == {"a": 0}  # block 1 (the head) was dropped


def test_sequence_numbers_detect_gaps_and_restarts() -> None:
    index = KvIndex()
    assert index.accept("a", 5) is Seq.APPLY  # the first message seen
    index.apply("a", batch(5, stored([1], None, PROMPT[:4])))
    assert index.accept("a", 6) is Seq.APPLY
    assert index.accept("a", 8) is Seq.GAP
    assert index.accept("a", 0) is Seq.RESTART
    assert index.accept("a", 5) is Seq.RESTART


def test_dropping_an_engine_removes_all_its_entries() -> None:
    index = KvIndex()
    index.apply("a", batch(0, stored([1, 2], None, PROMPT[:8])))
    index.apply("b", batch(0, stored([1, 2], None, PROMPT[:8])))
    index.drop_engine("a")
    assert index.matched(PROMPT, BS, 64, ["a", "b"]) == {"a": 0, "b": 2}
    assert (index.blocks("a"), index.last_seq("a")) == (0, None)
    index.drop_engine("b")
    assert index.matched(PROMPT, BS, 64, ["b"]) == {"b": 0}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from(["store", "remove", "drop"]),
                          st.integers(0, 3), st.integers(1, 4)), max_size=30),
       st.integers(0, 3))  # fmt: skip
def test_matched_agrees_with_a_naive_model(ops: list[tuple[str, str, int, int]], q: int) -> None:
    """Engines store/remove chains of several prompts or leave; ``matched`` counts, per engine,
    the leading blocks it holds, as a plain per-engine set of block prefixes says."""
    prompts = [[p * 100 + t for t in range(16)] for p in range(4)]
    index, model = KvIndex(), {e: set() for e in "abc"}  # engine -> {(prompt, blocks)}
    seq = dict.fromkeys("abc", 0)
    for engine, op, p, n in ops:
        hashes = [p * 10 + i for i in range(n)]
        if op == "store":
            index.apply(engine, batch(seq[engine], stored(hashes, None, prompts[p][: n * BS])))
            model[engine] |= {(p, i) for i in range(n)}
        elif op == "remove":
            index.apply(engine, batch(seq[engine], Removed((hashes[-1],))))
            model[engine] = {(pp, i) for pp, i in model[engine] if (pp, i) != (p, n - 1)}
        else:
            index.drop_engine(engine)
            model[engine], seq[engine] = set(), -1
        seq[engine] += 1
    want = {}
    for e in "abc":
        depth = 0
        while (q, depth) in model[e]:
            depth += 1
        want[e] = depth
    assert index.matched(prompts[q], BS, 64, list("abc")) == want
