"""Periodic scraping of every endpoint's ``/metrics`` with bounded concurrency and timeouts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

import aiohttp

from sagellm_router.config import ScrapeSettings
from sagellm_router.stats.engine import EngineStats, parse_engine_stats
from sagellm_router.stats.tracker import Clock

log = logging.getLogger(__name__)


class Scraper:
    """Keeps ``stats[url]`` up to date with the latest successful scrape of each endpoint."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: ScrapeSettings,
        clock: Clock,
        stats: dict[str, EngineStats],
        own_in_flight: Callable[[str], int] = lambda url: 0,
    ) -> None:
        self._session = session
        self._own_in_flight = own_in_flight
        self._settings = settings
        self._clock = clock
        self.stats = stats
        self._limit = asyncio.Semaphore(settings.concurrency)

    async def scrape_all(self, urls: Iterable[str]) -> None:
        """Scrape each URL once; failures leave the previous value (it goes stale)."""
        wanted = set(urls)
        for url in [u for u in self.stats if u not in wanted]:
            del self.stats[url]
        await asyncio.gather(*(self._scrape(url) for url in sorted(wanted)))

    async def _scrape(self, url: str) -> None:
        async with self._limit:
            try:
                timeout = aiohttp.ClientTimeout(total=self._settings.timeout_s)
                async with self._session.get(f"{url}/metrics", timeout=timeout) as resp:
                    if resp.status != 200:
                        return
                    text = await resp.text()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.debug("scrape of %s failed: %s", url, exc)
                return
        try:
            own = float(self._own_in_flight(url))
            self.stats[url] = parse_engine_stats(text, at=self._clock(), own_in_flight=own)
        except ValueError as exc:
            log.warning("unparseable /metrics from %s: %s", url, exc)
