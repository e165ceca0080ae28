"""Router replicas share their ``kv_aware`` picks, so every replica's bridge sees every pick.

``kv_aware`` bridges the lag of the engines' KV events with what *this* router sent each engine
in the last ``recent_s`` seconds (``sagellm_router.kv.recent``). Behind a Service with several
router replicas each replica sees only its share of the traffic, so a prompt that one replica
just sent to engine A looks uncached to the others until A's events arrive, and they place its
siblings elsewhere. ``ReplicaSync`` closes that gap the way Dynamo's router replica sync does:
each replica publishes every pick (pool, engine URL, the prompt's ``recent.keys``) on a ZMQ PUB
socket, subscribes to every peer's, and records their picks in its own bridge as if it had made
them. Peers are a static list or every address of a DNS name (the chart's headless Service of
the router pods), re-resolved every ``resolve_interval_s``.

A pick is one msgpack frame: ``[1, sender, pool, url, [key, ...]]``; ``sender`` (8 random bytes
per process) lets a replica drop its own picks when its own address is among the peers.
Delivery is best effort (a pick sent before a peer connected, or past a slow peer's send queue,
is dropped by ZMQ uncounted): a lost pick costs the bridge one hint, never a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import zmq
import zmq.asyncio

from sagellm_router.config import ReplicaSyncSettings, host_port

log = logging.getLogger("sagellm_router.kv")
VERSION = 1
MAX_KEYS = 4096
SEND_QUEUE = 1000  # frames per peer (each at most ~40 KB) before ZMQ drops new ones
MAX_FRAME = 64 * 1024  # a peer sending larger frames is disconnected by ZMQ
RETRY_S = 1.0
Learn = Callable[[str, str, Sequence[int]], bool]
"""(pool, url, keys) -> False when the pool or engine is unknown here."""


class PickError(ValueError):
    """A frame that is not a pick of this protocol version."""


@dataclass(frozen=True, slots=True)
class Pick:
    sender: bytes
    pool: str
    url: str
    keys: Sequence[int]


def encode(pick: Pick) -> bytes:
    return msgpack.packb([VERSION, pick.sender, pick.pool, pick.url, pick.keys])  # type: ignore[no-any-return]


def decode(frame: bytes) -> Pick:
    try:
        raw = msgpack.unpackb(frame, use_list=True, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise PickError(f"not msgpack: {exc}") from exc
    if not isinstance(raw, list) or len(raw) != 5:
        raise PickError("expected [version, sender, pool, url, keys]")
    version, sender, pool, url, keys = raw
    if version != VERSION:
        raise PickError(f"version {version!r}, expected {VERSION}")
    if not isinstance(sender, bytes) or not isinstance(pool, str) or not isinstance(url, str):
        raise PickError("sender must be bytes, pool and url strings")
    if not isinstance(keys, list) or len(keys) > MAX_KEYS:
        raise PickError(f"keys must be a list of at most {MAX_KEYS} ints")
    if not all(type(k) is int for k in keys):
        raise PickError("keys must be ints")
    return Pick(sender, pool, url, keys)


def zmq_endpoint(host: str, port: int) -> str:
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


class ReplicaSync:
    """This replica's PUB socket and its subscription to every peer's."""

    def __init__(self, settings: ReplicaSyncSettings, learn: Learn) -> None:
        if settings.port is None:
            raise ValueError("routing.replica_sync.port is not set")
        self._settings = settings
        self._learn = learn
        self.sender = os.urandom(8)
        self.sent = 0
        self.received = 0
        self.rejected: dict[str, int] = {}
        self.peers: set[str] = set()
        self._static = {zmq_endpoint(*host_port(p)) for p in settings.peers}
        self._pub: zmq.Socket[Any] | None = None
        self._sub: zmq.asyncio.Socket | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, ctx: zmq.asyncio.Context) -> None:
        """Bind, connect to the peers and start receiving; call on the event loop."""
        s = self._settings
        # a plain socket: a PUB send never waits, and the asyncio wrapper would make a future
        pub: zmq.Socket[Any] = zmq.Socket(ctx, zmq.PUB)
        pub.setsockopt(zmq.SNDHWM, SEND_QUEUE)
        pub.setsockopt(zmq.IPV6, 1)  # "*" then listens on IPv4 and IPv6
        where = zmq_endpoint(s.host, s.port or 0)
        try:
            pub.bind(where)
        except zmq.ZMQError as exc:
            pub.close(linger=0)
            raise ValueError(f"routing.replica_sync: cannot publish on {where}: {exc}") from exc
        self._pub = pub
        self._sub = ctx.socket(zmq.SUB)
        self._sub.setsockopt(zmq.SUBSCRIBE, b"")
        self._sub.setsockopt(zmq.IPV6, 1)
        self._sub.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME)
        self.connect(set())
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._receive(), name="replica-sync receive")]
        if s.peers_dns:
            self._tasks.append(
                loop.create_task(self._resolve(s.peers_dns), name="replica-sync dns")
            )

    def publish(self, pool: str, url: str, keys: Sequence[int]) -> None:
        """Tell the peers about one pick (never blocks: a full queue drops the pick). Keys are
        chained, so the first ``MAX_KEYS`` stand for the prompt's leading part."""
        if self._pub is None or not keys:
            return
        pick = Pick(self.sender, pool, url, keys[:MAX_KEYS])
        self._pub.send(encode(pick), zmq.NOBLOCK)  # PUB drops, never blocks, past SNDHWM
        self.sent += 1

    def connect(self, resolved: set[str]) -> None:
        """Subscribe to exactly the static peers and the ``resolved`` ones."""
        assert self._sub is not None
        wanted = self._static | resolved
        for gone in self.peers - wanted:
            with contextlib.suppress(zmq.ZMQError):
                self._sub.disconnect(gone)
        for new in wanted - self.peers:
            try:
                self._sub.connect(new)
            except zmq.ZMQError as exc:
                log.warning("router replica sync: cannot connect to %s: %s", new, exc)
                wanted = wanted - {new}
        if wanted != self.peers:
            log.info("router replica sync peers: %s", sorted(wanted))
        self.peers = set(wanted)

    def handle(self, frame: bytes) -> None:
        try:
            pick = decode(frame)
        except PickError as exc:
            log.debug("dropping a malformed replica-sync frame: %s", exc)
            self._reject("malformed")
            return
        if pick.sender == self.sender:
            return
        try:
            learnt = self._learn(pick.pool, pick.url, pick.keys)
        except Exception:  # a bug must not end the receiving loop
            log.exception("router replica sync: learning a peer's pick failed")
            self._reject("error")
            return
        if learnt:
            self.received += 1
        else:
            self._reject("unknown_endpoint")

    def _reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    async def _receive(self) -> None:
        assert self._sub is not None
        while True:
            try:
                frame = await self._sub.recv()
            except zmq.ZMQError as exc:
                log.warning("router replica sync: receiving: %s", exc)
                await asyncio.sleep(RETRY_S)
                continue
            self.handle(frame)

    async def _resolve(self, name: str, own: set[str] | None = None) -> None:
        """Every ``resolve_interval_s``: the peers are every address of ``name`` on its port,
        but this replica's own (``own``, default: what its hostname resolves to, when the port is
        this replica's)."""
        host, port = host_port(name)
        loop = asyncio.get_running_loop()
        if own is None:
            own = await self._own_addresses(loop) if port == self._settings.port else set()
        while True:
            try:
                addrs = await _addresses(loop, host, port) - own
                self.connect({zmq_endpoint(a, port) for a in addrs})
            except (OSError, zmq.ZMQError) as exc:
                log.warning("resolving router replica peers %s: %s", name, exc)
            await asyncio.sleep(self._settings.resolve_interval_s)

    @staticmethod
    async def _own_addresses(loop: asyncio.AbstractEventLoop) -> set[str]:
        """A pod's hostname resolves to its own IP."""
        try:
            return await _addresses(loop, socket.gethostname(), None)
        except OSError:
            return set()

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for sock in (self._pub, self._sub):
            if sock is not None:
                sock.close(linger=0)
        self._pub = self._sub = None
        self.peers = set()


async def _addresses(loop: asyncio.AbstractEventLoop, host: str, port: int | None) -> set[str]:
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return {str(info[4][0]) for info in infos}
