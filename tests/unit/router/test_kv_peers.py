"""Router replicas share kv_aware picks (``sagellm_router.kv.peers``): the wire format, the keys
every process computes alike, the settings, and two syncs talking over real ZMQ sockets."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from collections.abc import Sequence

import msgpack
import pytest
import zmq.asyncio
from pydantic import ValidationError

from e2e.waiting import eventually
from sagellm_router.config import ReplicaSyncSettings
from sagellm_router.kv.feeds import Feed, KvFeeds
from sagellm_router.kv.peers import MAX_KEYS, Pick, PickError, ReplicaSync, decode, encode
from sagellm_router.kv.recent import keys
from sagellm_router.routing.kv_aware import KvAware, KvAwareParams
from tests.ports import free_port

SENDER = b"\x01" * 8


def test_a_pick_round_trips() -> None:
    pick = Pick(SENDER, "pool", "http://a:8000", [1, -2, 2**63 - 1])
    assert decode(encode(pick)) == pick


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        (b"\xc1", "not msgpack"),
        (msgpack.packb([1, SENDER, "p", "u"]), "expected [version"),
        (msgpack.packb({"v": 1}), "expected [version"),
        (msgpack.packb([2, SENDER, "p", "u", []]), "version 2"),
        (msgpack.packb([1, "sender", "p", "u", []]), "sender must be bytes"),
        (msgpack.packb([1, SENDER, 7, "u", []]), "pool and url strings"),
        (msgpack.packb([1, SENDER, "p", "u", "keys"]), "keys must be a list"),
        (msgpack.packb([1, SENDER, "p", "u", [0] * (MAX_KEYS + 1)]), "at most"),
        (msgpack.packb([1, SENDER, "p", "u", [1, "2"]]), "keys must be ints"),
        (msgpack.packb([1, SENDER, "p", "u", [True]]), "keys must be ints"),
    ],
)
def test_malformed_frames_are_named(frame: bytes, problem: str) -> None:
    with pytest.raises(PickError, match=problem.replace("[", r"\[")):
        decode(frame)


def test_keys_are_equal_in_every_process() -> None:
    """``hash`` of a str is salted per process; the keys must not be."""
    text = "ü" + "shared system prompt " * 100
    code = (
        "import sys; from sagellm_router.kv.recent import keys; print(keys(sys.argv[1], 256, 1024))"
    )
    seen = {
        subprocess.run(
            [sys.executable, "-c", code, text], capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2")
    }  # fmt: skip
    assert seen == {str(keys(text, 256, 1024))}
    assert len(keys(text, 256, 1024)) == len(text.encode()) // 256


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"peers": ["a:1"]}, "need port"),
        ({"peers_dns": "router-peers:5590"}, "need port"),
        ({"port": 5590, "peers": ["no-port"]}, "must be host:port"),
        ({"port": 5590, "peers": ["a:99999"]}, "must be host:port"),
        ({"port": 5590, "peers_dns": "name"}, "must be host:port"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        ReplicaSyncSettings.model_validate(settings)


def feeds_with_pool() -> tuple[KvFeeds, KvAware]:
    strategy = KvAware(KvAwareParams(recent_s=5.0), random.Random(0), clock=lambda: 0.0)
    feeds = KvFeeds(replica_sync=ReplicaSyncSettings(port=free_port()))
    feeds.sync({"p": Feed(strategy, {"http://a": "p-0", "http://b": "p-1"})})
    return feeds, strategy


def test_a_peer_pick_is_learnt_only_for_a_known_pool_and_engine() -> None:
    feeds, strategy = feeds_with_pool()
    sync = feeds.replicas
    assert sync is not None
    k = keys("x" * 1024, 256, 64)
    sync.handle(encode(Pick(SENDER, "p", "http://a", k)))
    sync.handle(encode(Pick(SENDER, "other", "http://a", k)))
    sync.handle(encode(Pick(SENDER, "p", "http://gone", k)))
    sync.handle(encode(Pick(sync.sender, "p", "http://b", k)))  # its own: ignored
    sync.handle(b"junk")
    assert strategy._recent is not None
    assert strategy._recent.shares(k) == {"http://a": 1.0}
    assert sync.received == 1
    assert sync.rejected == {"unknown_endpoint": 2, "malformed": 1}


async def test_two_replicas_share_their_picks_over_zmq() -> None:
    feeds_a, strategy_a = feeds_with_pool()
    feeds_b, strategy_b = feeds_with_pool()
    sync_a, sync_b = feeds_a.replicas, feeds_b.replicas
    assert sync_a is not None
    assert sync_b is not None
    ctx = zmq.asyncio.Context()
    try:
        sync_a.start(ctx)
        sync_b.start(ctx)
        sync_a.connect({f"tcp://127.0.0.1:{sync_b._settings.port}"})
        sync_b.connect({f"tcp://127.0.0.1:{sync_a._settings.port}"})
        k = keys("y" * 2048, 256, 64)
        announce = strategy_a.announce
        assert announce is not None

        def sent_and_received() -> int:  # PUB drops what it sends before the SUB has joined
            announce("http://b", k)
            return sync_b.received

        await eventually(sent_and_received, "B to receive A's pick", 20)
        assert strategy_b._recent is not None
        assert strategy_b._recent.shares(k) == {"http://b": 1.0}
        assert sync_a.sent >= 1
        assert sync_b.rejected == {}
    finally:
        await sync_a.close()
        await sync_b.close()
        ctx.destroy(linger=0)


class Outbox:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def send(self, frame: bytes, flags: int = 0) -> None:
        self.frames.append(frame)


def test_a_long_prompt_is_announced_by_its_leading_keys() -> None:
    feeds, strategy = feeds_with_pool()
    sync = feeds.replicas
    assert sync is not None
    outbox = Outbox()
    sync._pub = outbox  # type: ignore[assignment]
    assert strategy.announce is not None
    strategy.announce("http://a", list(range(MAX_KEYS + 10)))
    strategy.announce("http://a", [])  # a prompt shorter than a block: nothing to share
    (frame,) = outbox.frames
    assert decode(frame).keys == list(range(MAX_KEYS))
    assert sync.sent == 1


async def test_a_busy_port_is_named() -> None:
    port = free_port()
    first = ReplicaSync(ReplicaSyncSettings(port=port, host="127.0.0.1"), lambda *_: True)
    second = ReplicaSync(ReplicaSyncSettings(port=port, host="127.0.0.1"), lambda *_: True)
    ctx = zmq.asyncio.Context()
    try:
        first.start(ctx)
        with pytest.raises(ValueError, match=rf"routing.replica_sync: cannot publish on .*:{port}"):
            second.start(ctx)
    finally:
        await first.close()
        await second.close()
        ctx.destroy(linger=0)


async def test_peers_are_the_static_ones_and_every_address_of_the_dns_name() -> None:
    settings = ReplicaSyncSettings(port=free_port(), host="127.0.0.1", peers=("10.9.9.9:5590",))
    sync = ReplicaSync(settings, lambda *_: True)
    ctx = zmq.asyncio.Context()
    try:
        sync.start(ctx)
        resolving = asyncio.create_task(sync._resolve("localhost:5999", own={"::1"}))
        try:
            await eventually(lambda: len(sync.peers) >= 2, "the DNS peers", 20)
        finally:
            resolving.cancel()
        assert "tcp://127.0.0.1:5999" in sync.peers
        assert "tcp://10.9.9.9:5590" in sync.peers  # the static peer stays
        assert not [p for p in sync.peers if "::1" in p]  # its own address is skipped
    finally:
        await sync.close()
        ctx.destroy(linger=0)


def test_a_failing_learn_is_counted_and_does_not_stop_the_sync() -> None:
    def broken(pool: str, url: str, blocks: Sequence[int]) -> bool:
        raise RuntimeError("bug")

    sync = ReplicaSync(ReplicaSyncSettings(port=free_port()), broken)
    sync.handle(encode(Pick(SENDER, "p", "http://a", [1])))
    assert sync.rejected == {"error": 1}
