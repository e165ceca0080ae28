"""Parse a vLLM ``/metrics`` page into the few numbers routing uses (pure, no I/O).

The page is scanned line by line for the few series needed instead of being parsed whole: a
vLLM page is ~44 KB and a full Prometheus parse took ~20 ms of event-loop time per scrape.

Series are summed over the ``engine`` label (data-parallel ranks) except KV usage, which takes
the maximum. Both the current ``vllm:kv_cache_usage_perc`` and the deprecated
``vllm:gpu_cache_usage_perc`` are accepted; the current name wins when both are present.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

_RUNNING = "vllm:num_requests_running"
_WAITING = "vllm:num_requests_waiting"
_KV = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
_HITS = ("vllm:prefix_cache_hits", "vllm:gpu_prefix_cache_hits")
_QUERIES = ("vllm:prefix_cache_queries", "vllm:gpu_prefix_cache_queries")
_COUNTERS = (*_HITS, *_QUERIES)
_WANTED = frozenset((_RUNNING, _WAITING, *_KV, *_COUNTERS, *(c + "_total" for c in _COUNTERS)))


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


def _samples(text: str) -> Iterator[tuple[str, float]]:
    """``(name, value)`` of every wanted sample line (``name{labels} value [timestamp]``)."""
    for line in text.splitlines():
        if not line.startswith("vllm:"):
            continue
        brace, space = line.find("{"), line.find(" ")
        if brace != -1 and (space == -1 or brace < space):
            name, rest = line[:brace], line[line.rfind("}") + 1 :]
        else:
            name, rest = line[:space], line[space:]
        if name not in _WANTED:
            continue
        fields = rest.split()
        try:
            yield name, float(fields[0])
        except (IndexError, ValueError):
            continue


def parse_engine_stats(text: str, at: float = 0.0, own_in_flight: float = 0.0) -> EngineStats:
    """Extract running/waiting/KV usage/prefix-cache counters from Prometheus text."""
    sums: dict[str, float] = {}
    kv: dict[str, float] = {}
    for name, value in _samples(text):
        if name in _KV:
            kv[name] = max(kv.get(name, 0.0), value)
        else:
            base = name.removesuffix("_total")
            sums[base] = sums.get(base, 0.0) + value
    kv_usage = kv.get(_KV[0], kv.get(_KV[1], 0.0))
    return EngineStats(
        running=sums.get(_RUNNING, 0.0),
        waiting=sums.get(_WAITING, 0.0),
        kv_usage=kv_usage,
        prefix_hits=sums.get(_HITS[0], sums.get(_HITS[1], 0.0)),
        prefix_queries=sums.get(_QUERIES[0], sums.get(_QUERIES[1], 0.0)),
        at=at,
        own_in_flight=own_in_flight,
    )
