"""An engine's load as the router holds it: the numbers of its ``/metrics`` page (read by
``sagellm_core.engine_metrics``, the parser the operator's drain uses too), when they were
scraped and how much of them this router had sent (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

from sagellm_core.engine_metrics import read_engine_page


@dataclass(frozen=True, slots=True)
class EngineStats:
    """Engine-reported load at scrape time ``at`` (seconds on the router's clock)."""

    running: float = 0.0
    waiting: float = 0.0
    kv_usage: float = 0.0
    prefix_hits: float = 0.0
    prefix_queries: float = 0.0
    at: float = 0.0
    own_in_flight: float = 0.0  # this router's in-flight requests to the engine at scrape time

    def others(self, value: float) -> float:
        """The part of an engine count (running, running + waiting) not sent by this router.

        The scrape is up to one interval old while the router's own count is exact, so loads add
        the router's current count to what other routers had in flight when the page was read.
        """
        return max(0.0, value - self.own_in_flight)


def parse_engine_stats(text: str, at: float = 0.0, own_in_flight: float = 0.0) -> EngineStats:
    """Running/waiting/KV usage/prefix-cache counters of a vLLM ``/metrics`` page (core's
    parser), stamped with the scrape time and the router's own in-flight count then."""
    page = read_engine_page(text)
    return EngineStats(
        running=page.running or 0.0,
        waiting=page.waiting or 0.0,
        kv_usage=page.kv_usage or 0.0,
        prefix_hits=page.prefix_hits or 0.0,
        prefix_queries=page.prefix_queries or 0.0,
        at=at,
        own_in_flight=own_in_flight,
    )
