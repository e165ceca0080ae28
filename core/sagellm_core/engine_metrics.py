"""The numbers read from a vLLM engine's ``/metrics`` page (pure, no I/O): the one parser the
router's load scrape and the operator's drain (idle check) share.

The page is scanned line by line for the few series wanted instead of being parsed whole: a
vLLM page is ~44 KB and a full Prometheus parse took ~20 ms of event-loop time per scrape. A
line is looked at only when it starts with a wanted name; label values may contain spaces and
braces, so the value is the first field after the closing brace of the label set.

Series are summed over every label set (one per data-parallel ``engine``) except KV usage,
which takes the maximum. Both the current and the deprecated names (``gpu_``) of KV usage and
the prefix-cache counters are read; the current name wins when both are present.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
IN_ENGINE = (RUNNING, WAITING)
KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
PREFIX_HITS = ("vllm:prefix_cache_hits", "vllm:gpu_prefix_cache_hits")
PREFIX_QUERIES = ("vllm:prefix_cache_queries", "vllm:gpu_prefix_cache_queries")
_COUNTERS = (*PREFIX_HITS, *PREFIX_QUERIES)
WANTED = (*IN_ENGINE, *KV_USAGE, *_COUNTERS, *(c + "_total" for c in _COUNTERS))


def parse_sample(line: str) -> tuple[str, float] | None:
    """``(name, value)`` of a sample line ``name{labels} value [timestamp]``, else None."""
    brace, space = line.find("{"), line.find(" ")
    if brace != -1 and (space == -1 or brace < space):
        name, rest = line[:brace], line[line.rfind("}") + 1 :]
    elif space != -1:
        name, rest = line[:space], line[space:]
    else:
        return None
    fields = rest.split()
    try:
        return name, float(fields[0])
    except (IndexError, ValueError):
        return None


def samples(text: str, names: tuple[str, ...]) -> Iterator[tuple[str, float]]:
    """``(name, value)`` of every sample of ``names`` on the page (unparsable lines skipped)."""
    wanted = frozenset(names)
    for line in text.splitlines():
        if not line.startswith(names):  # one C-level prefix test rejects most lines
            continue
        sample = parse_sample(line)
        if sample is not None and sample[0] in wanted:
            yield sample


@dataclass(frozen=True, slots=True)
class EnginePage:
    """What one ``/metrics`` page says; None where the page has no such series."""

    running: float | None = None
    waiting: float | None = None
    kv_usage: float | None = None
    prefix_hits: float | None = None
    prefix_queries: float | None = None

    @property
    def in_engine(self) -> float | None:
        """Running + waiting requests; None when neither series is on the page (not a vLLM
        page, so it says nothing about idleness)."""
        if self.running is None and self.waiting is None:
            return None
        return (self.running or 0.0) + (self.waiting or 0.0)


def read_engine_page(text: str) -> EnginePage:
    """The ``EnginePage`` of a vLLM ``/metrics`` page."""
    sums: dict[str, float] = {}
    kv: dict[str, float] = {}
    for name, value in samples(text, WANTED):
        if name in KV_USAGE:
            kv[name] = max(kv.get(name, 0.0), value)
        else:
            base = name.removesuffix("_total")
            sums[base] = sums.get(base, 0.0) + value
    return EnginePage(
        running=sums.get(RUNNING),
        waiting=sums.get(WAITING),
        kv_usage=_first(kv, KV_USAGE),
        prefix_hits=_first(sums, PREFIX_HITS),
        prefix_queries=_first(sums, PREFIX_QUERIES),
    )


def _first(values: dict[str, float], names: tuple[str, ...]) -> float | None:
    return next((values[n] for n in names if n in values), None)


def requests_in_engine(text: str) -> float | None:
    """Running + waiting requests on the page (the operator's drain reads it before deleting an
    instance); None when neither series is on it."""
    return read_engine_page(text).in_engine
