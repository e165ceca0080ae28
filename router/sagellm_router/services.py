"""The router core's background services, shared by the HTTP app and ``ControlPlaneManager``:
upstream connections, discovery, engine scraping, health probes, admission-queue ticks and the
KV-event feeds of pools routed by ``kv_aware`` (started and closed with the services)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp

from sagellm_router.discovery.base import Discovery
from sagellm_router.health import probe_ejected
from sagellm_router.inprocess.adapter import LocalEngine
from sagellm_router.inprocess.transport import INPROCESS_SCHEME, MixedUpstream
from sagellm_router.state import RouterState
from sagellm_router.stats.scraper import Scraper
from sagellm_router.upstream import Upstream, UpstreamPool

log = logging.getLogger(__name__)


class CoreServices:
    """Owns the HTTP clients and background tasks of one router core; ``start``/``stop``.

    ``local``: in-process engines by their ``inprocess://`` URL (``ControlPlaneManager``); their
    load comes from the adapters instead of a ``/metrics`` scrape, and an ejected one is
    re-admitted at the next probe tick (there is no separate process whose health to probe).
    """

    def __init__(
        self,
        state: RouterState,
        discovery: Discovery,
        local: dict[str, LocalEngine] | None = None,
    ) -> None:
        self.state = state
        self.discovery = discovery
        self.local = local if local is not None else {}
        t = state.settings.timeouts
        http = UpstreamPool(t.connect_s, t.read_idle_s, stream_idle_timeout=t.stall_s)
        self.upstream: Upstream = MixedUpstream(http, self.local) if local is not None else http
        self.session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        t = self.state.settings.timeouts
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=60)
        timeout = aiohttp.ClientTimeout(
            total=t.total_s, sock_connect=t.connect_s, sock_read=t.read_idle_s
        )
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        try:
            self.state.kv.start(self.session)  # first: it may refuse to start (a busy port)
        except ValueError:
            await self.session.close()
            self.session = None
            raise
        loops: list[Callable[[], Coroutine[Any, Any, None]]] = [
            self._discovery_loop, self._probe_loop, self._queue_loop,
        ]  # fmt: skip
        if self.state.settings.scrape.enabled:
            loops.append(self._scrape_loop)
        self._tasks = [asyncio.create_task(loop(), name=loop.__name__) for loop in loops]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.state.kv.close()
        if self.session is not None:
            await self.session.close()
        await self.upstream.close()

    async def _discovery_loop(self) -> None:
        async for pools in self.discovery.updates():
            self.state.apply_pools(pools)
            log.info("pools updated", extra={"pools": [p.name for p in pools]})

    async def _scrape_loop(self) -> None:
        assert self.session is not None
        settings = self.state.settings.scrape
        scraper = Scraper(self.session, settings, self.state.clock, self.state.engine_stats,
                          self.state.tracker.in_flight)  # fmt: skip
        while True:
            urls = [e.url for e in self.state.table.endpoints()]
            await scraper.scrape_all(u for u in urls if not u.startswith(INPROCESS_SCHEME))
            for url, engine in self.local.items():
                self.state.engine_stats[url] = engine.stats()
            await asyncio.sleep(settings.interval_s)

    async def _probe_loop(self) -> None:
        """Re-admit ejected endpoints whose probe request succeeds (with backoff per endpoint)."""
        assert self.session is not None
        state = self.state
        settings = state.settings.health
        while True:
            await asyncio.sleep(settings.probe_interval_s)
            for url in [u for u in state.health.ejected if u in self.local]:
                state.health.readmit(url)
                state.update_endpoint_gauges()
            if state.health.ejected and await probe_ejected(
                state.health, self.session, state.probe_targets(), settings.probe_timeout_s,
                state.clock(),
            ):  # fmt: skip
                state.update_endpoint_gauges()

    async def _queue_loop(self) -> None:
        """Re-run every pool's policy (capacity freed outside the router, adaptive switches);
        answer requests queued for a pool that died meanwhile."""
        while True:
            self.state.reject_queued_of_dead_pools()
            for runtime in list(self.state.runtimes.values()):
                runtime.queue.poke()
            await asyncio.sleep(self.state.settings.queue.tick_interval_s)
