"""Following engines' KV events over ZMQ into a ``KvIndex`` (the I/O edge of ``sagellm_router.kv``).

``KvEventFollower.track(urls)`` keeps one follower task per engine URL: it asks the engine where
it publishes (``GET /kv_event_sources``, vLLM 0.32's route; a wildcard host is replaced by the
engine's host; retried with backoff while the engine does not answer, given up on a 404),
replays what the engine still buffers (from the last applied sequence number,
or from 0 the first time), then applies the live PUB stream. A gap in sequence numbers is
filled by a replay; when the replay cannot fill it (no replay socket, or the buffer moved on)
the engine's entries are cleared and rebuilt from new events. An engine that leaves ``urls`` is
dropped from the index. Engines without events (``{}``) are simply not indexed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import zmq
import zmq.asyncio

from sagellm_router.kv.events import Batch, KvEventError, decode
from sagellm_router.kv.index import KvIndex, Seq

log = logging.getLogger("sagellm_router.kv")
END_SEQ = (-1).to_bytes(8, "big", signed=True)


@dataclass(frozen=True, slots=True)
class Publisher:
    engine: str  # index key: the endpoint URL, suffixed ``|dp<rank>`` for DP ranks > 0
    endpoint: str
    replay: str | None


def publishers(url: str, sources: Any) -> list[Publisher]:
    """Where the engine at ``url`` publishes, from its ``/kv_event_sources`` answer."""
    if not isinstance(sources, dict):
        raise ValueError(f"{url}/kv_event_sources is not a JSON object")
    host = urlsplit(url).hostname or "127.0.0.1"
    out = []
    for rank, config in sorted(sources.items()):
        if not isinstance(config, dict) or config.get("publisher", "zmq") != "zmq":
            continue
        engine = url if str(rank) == "0" else f"{url}|dp{rank}"
        replay = config.get("replay_endpoint")
        out.append(Publisher(engine, _connectable(config["endpoint"], host),
                             _connectable(replay, host) if replay else None))  # fmt: skip
    return out


def _connectable(endpoint: str, host: str) -> str:
    for wildcard in ("*", "0.0.0.0", "[::]"):
        endpoint = endpoint.replace(f"://{wildcard}:", f"://{host}:")
    return endpoint


class KvEventFollower:
    """One task per tracked engine URL, feeding ``index``."""

    def __init__(
        self, index: KvIndex, session: aiohttp.ClientSession, ctx: zmq.asyncio.Context,
        replay_timeout_s: float = 5.0, retry_s: float = 0.5, retry_max_s: float = 30.0,
    ) -> None:  # fmt: skip
        self.index = index
        self._session = session
        self._ctx = ctx
        self._replay_timeout_ms = int(replay_timeout_s * 1000)
        self._retry = (retry_s, retry_max_s)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.engines: dict[str, list[str]] = {}  # url -> index keys of its DP ranks
        self.events: dict[str, int] = {}  # index key -> events applied
        self.resyncs: dict[tuple[str, str], int] = {}  # (index key, reason) -> count

    def track(self, urls: Iterable[str]) -> None:
        """Follow exactly ``urls``: start new ones, stop and forget those that left."""
        wanted = set(urls)
        for url in [u for u in self._tasks if u not in wanted]:
            self._tasks.pop(url).cancel()
            for engine in self.engines.pop(url, [url]):
                self.index.drop_engine(engine)
                self.events.pop(engine, None)
                for key in [k for k in self.resyncs if k[0] == engine]:
                    del self.resyncs[key]
        for url in wanted - set(self._tasks):
            task = asyncio.get_running_loop().create_task(self._run(url), name=f"kv-events {url}")
            task.add_done_callback(_log_failure)
            self._tasks[url] = task

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self.track(())
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, url: str) -> None:
        pubs = await self._sources(url)
        self.engines[url] = [p.engine for p in pubs]
        await asyncio.gather(*(self.follow(p) for p in pubs))

    async def _sources(self, url: str) -> list[Publisher]:
        """The engine's publishers; waits (with backoff) for an engine that does not answer."""
        delay, most = self._retry
        timeout = aiohttp.ClientTimeout(total=5)
        while True:
            try:
                async with self._session.get(f"{url}/kv_event_sources", timeout=timeout) as resp:
                    if resp.status == 404:
                        log.warning("%s has no /kv_event_sources (not vLLM >= 0.32?); its KV "
                                    "events are not followed", url)  # fmt: skip
                        return []
                    resp.raise_for_status()
                    return publishers(url, await resp.json())
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.debug("asking %s for its KV-event publishers: %s", url, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, most)

    async def follow(self, pub: Publisher) -> None:
        """Catch up by replay, then apply the live stream until cancelled."""
        sub = self._ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(pub.endpoint)
        try:
            last = self.index.last_seq(pub.engine)
            await self.catch_up(pub, 0 if last is None else last + 1)
            while True:
                await self._live(pub, await sub.recv_multipart())
        finally:
            sub.close(linger=0)

    async def _live(self, pub: Publisher, frames: list[bytes]) -> None:
        try:
            batch = decode(frames)
        except KvEventError as exc:
            log.warning("dropping a malformed KV-event frame from %s: %s", pub.engine, exc)
            return
        verdict = self.index.accept(pub.engine, batch.seq)
        if verdict is Seq.RESTART:  # its first batches may have gone out before we reconnected
            log.info("KV-event publisher of %s restarted; rebuilding its blocks", pub.engine)
            self._count(pub.engine, "restart")
            self._reset(pub.engine)
            await self.catch_up(pub, 0)
        elif verdict is Seq.GAP:
            missing = (self.index.last_seq(pub.engine) or 0) + 1
            log.info("KV-event gap from %s: seq %d..%d", pub.engine, missing, batch.seq - 1)
            if await self.catch_up(pub, missing):
                self._count(pub.engine, "gap_replayed")
            else:
                log.info("replay could not fill the gap; rebuilding %s", pub.engine)
                self._count(pub.engine, "gap_rebuilt")
                self._reset(pub.engine)
                await self.catch_up(pub, 0)
        last = self.index.last_seq(pub.engine)
        if last is None or batch.seq == last + 1:  # a replay may already have applied it
            self._apply(pub.engine, batch)

    def _apply(self, engine: str, batch: Batch) -> None:
        self.index.apply(engine, batch)
        self.events[engine] = self.events.get(engine, 0) + len(batch.events)

    def _count(self, engine: str, reason: str) -> None:
        self.resyncs[engine, reason] = self.resyncs.get((engine, reason), 0) + 1

    def _reset(self, engine: str) -> None:
        self.index.clear_engine(engine)
        self.index.forget_seq(engine)

    async def catch_up(self, pub: Publisher, start: int) -> bool:
        """Apply the buffered batches from ``start`` in order; True if the replay began there."""
        if pub.replay is None:
            return False
        sock = self._ctx.socket(zmq.DEALER)
        sock.connect(pub.replay)
        first: int | None = None
        try:
            await sock.send_multipart([b"", start.to_bytes(8, "big")])
            while await sock.poll(self._replay_timeout_ms):
                frames = await sock.recv_multipart()
                if frames[2] == END_SEQ:
                    break
                batch = decode(frames[1:])
                first = batch.seq if first is None else first
                last = self.index.last_seq(pub.engine)
                if last is None or batch.seq == last + 1:
                    self._apply(pub.engine, batch)
        except KvEventError as exc:
            log.warning("bad KV-event replay from %s: %s", pub.engine, exc)
            return False
        finally:
            sock.close(linger=0)
        return first == start


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("following KV events stopped (%s): %r", task.get_name(), exc)
