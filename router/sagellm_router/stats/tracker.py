"""Router-side request tracking per endpoint: in-flight counts and TTFT, with an injected clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass(slots=True)
class EndpointCounters:
    """Live counters for one endpoint."""

    in_flight: int = 0
    started: int = 0
    failed: int = 0
    ttft_ewma_s: float | None = None


class RequestTracker:
    """Counts requests in flight per endpoint and keeps an EWMA of time-to-first-byte."""

    def __init__(self, clock: Clock, ttft_alpha: float = 0.2) -> None:
        self._clock = clock
        self._alpha = ttft_alpha
        self._counters: dict[str, EndpointCounters] = {}
        self.total_in_flight = 0

    def counters(self, url: str) -> EndpointCounters:
        counters = self._counters.get(url)
        if counters is None:
            counters = self._counters[url] = EndpointCounters()
        return counters

    def in_flight(self, url: str) -> int:
        counters = self._counters.get(url)
        return counters.in_flight if counters else 0

    def start(self, url: str) -> float:
        """Record a request sent to ``url``; returns the start time for ``first_byte``."""
        counters = self.counters(url)
        counters.in_flight += 1
        counters.started += 1
        self.total_in_flight += 1
        return self._clock()

    def first_byte(self, url: str, started_at: float) -> float:
        """Record the first response byte; returns the observed TTFT in seconds."""
        ttft = self._clock() - started_at
        counters = self.counters(url)
        previous = counters.ttft_ewma_s
        counters.ttft_ewma_s = (
            ttft if previous is None else previous + self._alpha * (ttft - previous)
        )
        return ttft

    def finish(self, url: str, *, failed: bool = False) -> None:
        counters = self.counters(url)
        counters.in_flight = max(0, counters.in_flight - 1)
        self.total_in_flight = max(0, self.total_in_flight - 1)
        if failed:
            counters.failed += 1

    def forget(self, keep: set[str]) -> None:
        """Drop idle counters of endpoints that are no longer known."""
        for url in [u for u, c in self._counters.items() if u not in keep and not c.in_flight]:
            del self._counters[url]
