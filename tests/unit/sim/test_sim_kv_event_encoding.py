"""KV-cache events: the cache queues vLLM's events, the encoder writes vLLM 0.32's msgpack."""

from __future__ import annotations

import msgpack
import pytest

from sagellm_sim.engine import EngineCore, SimRequest
from sagellm_sim.kv_events import (
    AllBlocksCleared,
    BlockRemoved,
    BlockStored,
    KvEventsConfig,
    encode_batch,
    external_hash,
    offset_endpoint_port,
)
from sagellm_sim.kvcache import KVCache, block_hashes
from sagellm_sim.profiles import CostModel, Parallelism, get_profile


def _engine(blocks: int = 8, events: bool = True) -> EngineCore:
    cost = CostModel(get_profile("tiny"), Parallelism(1, 1))
    return EngineCore(cost, KVCache(blocks, 4, True, record_events=events), 8, 64)


def _run(core: EngineCore, prompt: list[int], rid: str) -> None:
    req = SimRequest(rid, prompt, 1, 1, 0.0, block_hashes=block_hashes(prompt, 4))
    core.add(req)
    while core.has_work():
        core.complete(core.schedule(0.0), 0.0)


def test_a_request_stores_its_full_prompt_blocks_in_one_event() -> None:
    core = _engine()
    prompt = list(range(10))  # two full blocks of 4, and a partial one
    _run(core, prompt, "a")
    hashes = block_hashes(prompt, 4)
    assert core.cache.take_events() == [BlockStored(tuple(hashes), None, tuple(range(8)), 4)]
    assert core.cache.take_events() == []


def test_a_prefix_hit_stores_only_the_new_blocks_with_the_hit_as_parent() -> None:
    core = _engine()
    _run(core, list(range(10)), "a")
    core.cache.take_events()
    longer = [*range(8), 50, 51, 52, 53, 54]
    _run(core, longer, "b")
    hashes = block_hashes(longer, 4)
    assert core.cache.take_events() == [BlockStored((hashes[2],), hashes[1], (50, 51, 52, 53), 4)]


def test_eviction_removes_each_cached_block_and_reset_clears_all() -> None:
    core = _engine(blocks=3)
    _run(core, list(range(8)), "a")  # caches 2 blocks (3 allocated, 1 partial-free)
    first = block_hashes(list(range(8)), 4)
    core.cache.take_events()
    _run(core, [*range(100, 112)], "b")  # needs all 3 blocks: evicts both cached ones
    events = core.cache.take_events()
    assert {e.block_hash for e in events if isinstance(e, BlockRemoved)} == set(first)
    assert core.cache.reset()
    assert core.cache.take_events() == [AllBlocksCleared()]


def test_no_events_are_queued_unless_recording() -> None:
    core = _engine(events=False)
    _run(core, list(range(10)), "a")
    assert core.cache.events is None
    assert core.cache.take_events() == []


def test_batch_payload_is_vllm_array_like_batch_of_tagged_maps() -> None:
    stored = BlockStored((11, 12), 10, tuple(range(8)), 4)
    payload = encode_batch(1.5, [stored, BlockRemoved(11), AllBlocksCleared()], 0, False)
    ts, events, rank = msgpack.unpackb(payload)
    assert (ts, rank) == (1.5, 0)
    assert list(events[0]) == ["type", "block_hashes", "parent_block_hash", "token_ids",
                               "block_size", "lora_id", "medium", "lora_name", "extra_keys",
                               "group_idx", "kv_cache_spec_kind"]  # fmt: skip
    assert events[0]["block_hashes"] == [external_hash(11, False), external_hash(12, False)]
    assert events[0]["parent_block_hash"] == external_hash(10, False)
    assert len(events[0]["block_hashes"][0]) == 32
    assert events[0]["extra_keys"] == [None, None]
    assert events[0]["kv_cache_spec_kind"] == "full_attention"
    assert isinstance(
        msgpack.unpackb(encode_batch(1.5, [stored], 0, True))[1][0]["block_hashes"][0], int
    )
    assert (events[0]["token_ids"], events[0]["medium"]) == (list(range(8)), "GPU")
    assert events[1] == {"type": "BlockRemoved", "block_hashes": [external_hash(11, False)],
                         "medium": "GPU", "group_idx": 0}  # fmt: skip
    assert events[2] == {"type": "AllBlocksCleared"}
    assert payload[:2] == b"\x93\xcb"  # fixarray(3), then ts as float64, as msgspec writes it


def test_int_block_hashes_are_the_low_64_bits() -> None:
    as_int = external_hash(7, True)
    assert isinstance(as_int, int)
    assert as_int == int.from_bytes(external_hash(7, False), "big") & (2**64 - 1)


def test_config_defaults_and_errors() -> None:
    on = KvEventsConfig.parse('{"enable_kv_cache_events": true}')
    assert (on.publisher, on.endpoint, on.replay_endpoint, on.topic) == (
        "zmq", "tcp://*:5557", None, "",
    )  # fmt: skip
    assert on.publishes
    assert not KvEventsConfig.parse('{"publisher": "zmq"}').publishes
    with pytest.raises(ValueError, match="unknown key"):
        KvEventsConfig.parse('{"enable_kv_cache_events": true, "endpont": "x"}')
    with pytest.raises(ValueError, match="publisher"):
        KvEventsConfig.parse('{"publisher": "kafka"}')
    with pytest.raises(ValueError, match="JSON"):
        KvEventsConfig.parse("{")


def test_dp_ranks_offset_the_endpoint_port() -> None:
    assert offset_endpoint_port("tcp://*:5557", 0) == "tcp://*:5557"
    assert offset_endpoint_port("tcp://*:5557", 2) == "tcp://*:5559"
    assert offset_endpoint_port("tcp://*:0", 2) == "tcp://*:0"
    assert offset_endpoint_port("inproc://kv", 1) == "inproc://kv_dp1"
