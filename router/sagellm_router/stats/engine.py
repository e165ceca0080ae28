"""Parse a vLLM ``/metrics`` page into the few numbers routing uses (pure, no I/O).

Series are summed over the ``engine`` label (data-parallel ranks) except KV usage, which takes
the maximum. Both the current ``vllm:kv_cache_usage_perc`` and the deprecated
``vllm:gpu_cache_usage_perc`` are accepted; the current name wins when both are present.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

_RUNNING = "vllm:num_requests_running"
_WAITING = "vllm:num_requests_waiting"
_KV = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
_HITS = ("vllm:prefix_cache_hits", "vllm:gpu_prefix_cache_hits")
_QUERIES = ("vllm:prefix_cache_queries", "vllm:gpu_prefix_cache_queries")


@dataclass(frozen=True, slots=True)
class EngineStats:
    """Engine-reported load at scrape time ``at`` (seconds on the router's clock)."""

    running: float = 0.0
    waiting: float = 0.0
    kv_usage: float = 0.0
    prefix_hits: float = 0.0
    prefix_queries: float = 0.0
    at: float = 0.0


def parse_engine_stats(text: str, at: float = 0.0) -> EngineStats:
    """Extract running/waiting/KV usage/prefix-cache counters from Prometheus text."""
    sums: dict[str, float] = {}
    kv: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if name in _KV:
                kv[name] = max(kv.get(name, 0.0), sample.value)
            elif name.endswith("_created"):
                continue
            else:
                base = name.removesuffix("_total")
                if base in (_RUNNING, _WAITING, *_HITS, *_QUERIES):
                    sums[base] = sums.get(base, 0.0) + sample.value
    kv_usage = kv.get(_KV[0], kv.get(_KV[1], 0.0))
    return EngineStats(
        running=sums.get(_RUNNING, 0.0),
        waiting=sums.get(_WAITING, 0.0),
        kv_usage=kv_usage,
        prefix_hits=sums.get(_HITS[0], sums.get(_HITS[1], 0.0)),
        prefix_queries=sums.get(_QUERIES[0], sums.get(_QUERIES[1], 0.0)),
        at=at,
    )
