"""Passive health: eject an endpoint after N consecutive failures; re-admit it after a probe.

The decision logic is pure (``HealthBook``); ``probe_ejected`` does the I/O and is driven by a
periodic task in the app.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

log = logging.getLogger(__name__)


class HealthBook:
    """Counts consecutive failures per endpoint URL and tracks the ejected set."""

    def __init__(self, failure_threshold: int) -> None:
        self._threshold = failure_threshold
        self._failures: dict[str, int] = {}
        self.ejected: set[str] = set()

    def success(self, url: str) -> None:
        if self._failures.get(url):
            self._failures[url] = 0

    def failure(self, url: str) -> bool:
        """Record a failure; returns True when this failure ejects the endpoint."""
        count = self._failures.get(url, 0) + 1
        self._failures[url] = count
        if count >= self._threshold and url not in self.ejected:
            self.ejected.add(url)
            return True
        return False

    def readmit(self, url: str) -> None:
        self.ejected.discard(url)
        self._failures.pop(url, None)

    def forget(self, keep: set[str]) -> None:
        self.ejected &= keep
        self._failures = {u: n for u, n in self._failures.items() if u in keep}


async def probe_ejected(
    book: HealthBook, session: aiohttp.ClientSession, timeout_s: float
) -> list[str]:
    """GET /health on every ejected endpoint; re-admit those answering 200. Returns them."""
    urls = sorted(book.ejected)
    results = await asyncio.gather(*(_healthy(session, u, timeout_s) for u in urls))
    recovered = [url for url, ok in zip(urls, results, strict=True) if ok]
    for url in recovered:
        book.readmit(url)
        log.info("endpoint re-admitted after a good health probe", extra={"endpoint": url})
    return recovered


async def _healthy(session: aiohttp.ClientSession, url: str, timeout_s: float) -> bool:
    try:
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with session.get(f"{url}/health", timeout=timeout) as resp:
            return resp.status == 200
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False
