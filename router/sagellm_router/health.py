"""Passive health: eject an endpoint after failures; re-admit it only after a real request works.

``HealthBook`` is the pure decision logic (time passed in): consecutive failures per endpoint
URL, ejection (at once for a timeout, else after ``failure_threshold`` in a row), and when each
ejected endpoint is due for its next probe (exponential backoff). ``probe_ejected`` does the
I/O: a tiny completion (``max_tokens=1``, streamed to ``[DONE]``) or, for embedding pools, an
embeddings request. ``/health`` alone is not enough: a hung engine still answers it with 200.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
import orjson

log = logging.getLogger(__name__)

#: Reasons that eject at the first occurrence: each one already cost the client seconds.
IMMEDIATE = frozenset({"first_byte_timeout", "stall"})


@dataclass(slots=True)
class Ejection:
    """Why and since when an endpoint is out, and when it is probed next."""

    reason: str
    since: float
    probes: int = 0
    next_probe: float = 0.0


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """What a probe sends: the pool's served model name and task (``generate`` or ``embed``)."""

    model: str
    task: str = "generate"


class HealthBook:
    """Counts consecutive failures per endpoint URL and tracks the ejected ones."""

    def __init__(
        self, failure_threshold: int, backoff_initial_s: float = 1.0, backoff_max_s: float = 30.0
    ) -> None:
        self._threshold = failure_threshold
        self._initial, self._max = backoff_initial_s, backoff_max_s
        self._failures: dict[str, int] = {}
        self.ejected: dict[str, Ejection] = {}

    def success(self, url: str) -> None:
        if self._failures.get(url):
            self._failures[url] = 0

    def failure(self, url: str, reason: str = "error", now: float = 0.0) -> bool:
        """Record a failure; returns True when this failure ejects the endpoint."""
        count = self._failures.get(url, 0) + 1
        self._failures[url] = count
        if url in self.ejected or (count < self._threshold and reason not in IMMEDIATE):
            return False
        self.ejected[url] = Ejection(reason, now, next_probe=now + self._initial)
        return True

    def due(self, now: float) -> list[str]:
        """Ejected endpoints whose next probe time has come."""
        return sorted(url for url, e in self.ejected.items() if e.next_probe <= now)

    def probe_failed(self, url: str, now: float) -> None:
        """Back off: the next probe waits twice as long, up to the maximum."""
        entry = self.ejected.get(url)
        if entry is not None:
            entry.probes += 1
            entry.next_probe = now + min(self._max, self._initial * 2**entry.probes)

    def readmit(self, url: str) -> None:
        self.ejected.pop(url, None)
        self._failures.pop(url, None)

    def forget(self, keep: set[str]) -> None:
        self.ejected = {u: e for u, e in self.ejected.items() if u in keep}
        self._failures = {u: n for u, n in self._failures.items() if u in keep}


async def probe_ejected(
    book: HealthBook,
    session: aiohttp.ClientSession,
    targets: Mapping[str, ProbeTarget],
    timeout_s: float,
    now: float,
) -> list[str]:
    """Probe every ejected endpoint that is due; re-admit those that answer. Returns them."""
    urls = [u for u in book.due(now) if u in targets]
    results = await asyncio.gather(*(probe(session, u, targets[u], timeout_s) for u in urls))
    recovered = []
    for url, ok in zip(urls, results, strict=True):
        if ok:
            book.readmit(url)
            recovered.append(url)
            log.info("endpoint re-admitted after a good probe request", extra={"endpoint": url})
        else:
            book.probe_failed(url, now)
    return recovered


def probe_request(target: ProbeTarget) -> tuple[str, bytes]:
    """The path and body of the probe for ``target`` (pure)."""
    if target.task == "embed":
        return "/v1/embeddings", orjson.dumps({"model": target.model, "input": "ping"})
    body = {"model": target.model, "prompt": "ping", "max_tokens": 1, "stream": True}
    return "/v1/completions", orjson.dumps(body)


def probe_passed(status: int, body: bytes, task: str) -> bool:
    """A 200 and, for a stream, a clean end: ``[DONE]`` and no error event (pure)."""
    if status != 200:
        return False
    return task == "embed" or (b"[DONE]" in body and b'"error"' not in body)


async def probe(
    session: aiohttp.ClientSession, url: str, target: ProbeTarget, timeout_s: float
) -> bool:
    path, body = probe_request(target)
    headers = {"Content-Type": "application/json", "X-Request-Id": "sagellm-router-probe"}
    try:
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with session.post(url + path, data=body, headers=headers, timeout=timeout) as resp:
            return probe_passed(resp.status, await resp.read(), target.task)
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False
