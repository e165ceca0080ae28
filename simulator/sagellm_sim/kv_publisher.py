"""The ZMQ side of KV-cache events: a PUB socket plus an optional ROUTER replay socket per engine.

Mirrors vLLM 0.32's ``ZmqEventPublisher``: a wildcard (``tcp://*:N``), ``ipc://`` or
``inproc://`` endpoint is bound, any other is connected to; each batch is sent as
``(topic, seq, payload)`` and kept in a replay buffer of ``buffer_steps`` batches. A replay
request on the ROUTER socket is ``(identity, b"", start_seq)``; the answer is every buffered
``(identity, b"", topic, seq, payload)`` with ``seq >= start_seq``, then
``(identity, b"", b"", -1, b"")``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections import deque
from collections.abc import Callable

import zmq
import zmq.asyncio

from sagellm_sim.kv_events import END_SEQ, KvEvent, KvEventsConfig, encode_batch
from sagellm_sim.kv_events import offset_endpoint_port as offset

log = logging.getLogger("sagellm_sim.kv_events")


def _is_bind(endpoint: str) -> bool:
    return "*" in endpoint or "::" in endpoint or endpoint.startswith(("ipc://", "inproc://"))


def _resolved(sock: zmq.asyncio.Socket, endpoint: str) -> str:
    """The endpoint as configured, or the port the OS chose for ``tcp://*:0``."""
    if not endpoint.endswith(":0"):
        return endpoint
    return str(sock.getsockopt_string(zmq.LAST_ENDPOINT))


class ZmqKvPublisher:
    """Publishes one engine's event batches; ``start`` binds, ``close`` releases the sockets."""

    def __init__(
        self, config: KvEventsConfig, dp_rank: int, ctx: zmq.asyncio.Context,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.config = config
        self.dp_rank = dp_rank
        self.endpoint = offset(config.endpoint, dp_rank) or config.endpoint
        self.replay_endpoint = offset(config.replay_endpoint, dp_rank)
        self._ctx = ctx
        self._wall = wall_clock
        self._topic = config.topic.encode()
        self._seq = 0
        self._buffer: deque[tuple[int, bytes]] = deque(maxlen=config.buffer_steps)
        self._int_hashes = os.environ.get("VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES", "1") != "0"
        self._pub: zmq.asyncio.Socket | None = None
        self._replay: zmq.asyncio.Socket | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        pub = self._ctx.socket(zmq.PUB)
        pub.set_hwm(self.config.hwm)
        if _is_bind(self.endpoint):
            pub.bind(self.endpoint)
            self.endpoint = _resolved(pub, self.endpoint)
        else:
            pub.connect(self.endpoint)
        self._pub = pub
        if self.replay_endpoint is not None:
            replay = self._ctx.socket(zmq.ROUTER)
            replay.bind(self.replay_endpoint)
            self.replay_endpoint = _resolved(replay, self.replay_endpoint)
            self._replay = replay
            self._task = asyncio.get_running_loop().create_task(self._serve_replay())
        log.info("KV events: publishing on %s (replay %s)", self.endpoint, self.replay_endpoint)

    def source(self) -> dict[str, object]:
        """This publisher's entry in ``GET /kv_event_sources`` (vLLM's resolved config)."""
        return {**dataclasses.asdict(self.config), "endpoint": self.endpoint,
                "replay_endpoint": self.replay_endpoint}  # fmt: skip

    def publish(self, events: list[KvEvent]) -> None:
        """Send one batch now (PUB never blocks: past ``hwm`` ZMQ drops, as for vLLM)."""
        if self._pub is None or not events:
            return
        payload = encode_batch(self._wall(), events, self.dp_rank, self._int_hashes)
        seq = self._seq
        self._seq += 1
        with contextlib.suppress(zmq.Again):
            self._pub.send_multipart((self._topic, seq.to_bytes(8, "big"), payload), zmq.NOBLOCK)
        self._buffer.append((seq, payload))

    async def _serve_replay(self) -> None:
        assert self._replay is not None
        while True:
            frames = await self._replay.recv_multipart()
            if len(frames) != 3:
                log.warning("invalid KV-event replay request: %d frames", len(frames))
                continue
            client, _, start = frames
            first = int.from_bytes(start, "big")
            for seq, payload in list(self._buffer):
                if seq >= first:
                    await self._replay.send_multipart(
                        (client, b"", self._topic, seq.to_bytes(8, "big"), payload)
                    )
            await self._replay.send_multipart((client, b"", b"", END_SEQ, b""))

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sock in (self._pub, self._replay):
            if sock is not None:
                sock.close(linger=0)
        self._pub = self._replay = None
