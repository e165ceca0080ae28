"""vLLM-named Prometheus metrics of one simulator instance (own registry, no globals).

Gauges and token counters are read from the engine cores at scrape time (a custom collector),
so the engine loop does no metric work per step; latency histograms are observed when tokens
are delivered and requests finish. Names, types, labels and buckets follow
``vllm/v1/metrics/loggers.py`` (see docs/simulator.md, "Metrics").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from sagellm_sim.engine import EngineCore, SimRequest
from sagellm_sim.metrics_request import LABELS, LATENCY_BUCKETS, RequestHistograms

CONTENT_TYPE = CONTENT_TYPE_LATEST  # "text/plain; version=1.0.0; charset=utf-8", as vLLM 0.32
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
               10.0, 20.0, 40.0, 80.0)  # fmt: skip
FINISH_REASONS = ("stop", "length", "abort", "error", "repetition")
REJECT_REASONS = ("max_num_queued_reqs", "max_num_queued_tokens")
CACHED_SOURCES = ("device", "host", "p2p", "disk", "external_unspecified")
ZERO_COUNTERS = {  # families vLLM exports that the simulator has nothing to count for
    "vllm:external_prefix_cache_queries": "External prefix cache queries from KV connector "
    "cross-instance cache sharing, in terms of number of queried tokens.",
    "vllm:external_prefix_cache_hits": "External prefix cache hits from KV connector "
    "cross-instance cache sharing, in terms of number of cached tokens.",
    "vllm:mm_cache_queries": "Multi-modal cache queries, in terms of number of queried items.",
    "vllm:mm_cache_hits": "Multi-modal cache hits, in terms of number of cached items.",
}


def cache_config_labels(
    block_size: int, num_gpu_blocks: int, override: int | None, prefix_caching: bool,
    gpu_memory_utilization: float, max_model_len: int,
) -> dict[str, str]:  # fmt: skip
    """The label set of ``vllm:cache_config_info`` as vLLM 0.32 exports it (CacheConfig)."""
    tokens = num_gpu_blocks * block_size
    fixed = {"cache_hit_alignment_tokens": "None", "enable_mamba_shared_prefix_checkpoint": "False",
             "hash_block_size": "None", "is_attention_free": "False",
             "kv_cache_dtype_skip_layers": "[]", "kv_cache_layout": "None",
             "kv_cache_memory_bytes": "None", "kv_offloading_backend": "native",
             "kv_offloading_size": "None", "kv_sharing_fast_prefill": "False",
             "mamba_block_size": "None", "mamba_cache_dtype": "auto", "mamba_cache_mode": "none",
             "mamba_page_size_padded": "None", "mamba_ssm_cache_dtype": "float32",
             "num_cpu_blocks": "None", "prefix_cache_retention_interval": "0",
             "prefix_caching_hash_algo": "sha256", "prefix_match_unit": "None",
             "replayssm_buffer_len": "16", "skip_page_size_padded": "None",
             "sliding_window": "None", "swa_bounded_replay": "True", "use_kda_recoverssm": "False",
             "use_replayssm": "False"}  # fmt: skip
    labels = {
        **fixed, "_block_size_resolved": "True", "block_size": str(block_size),
        "cache_dtype": "auto", "effective_attention_block_size": str(block_size),
        "enable_prefix_caching": str(prefix_caching),
        "gpu_memory_utilization": str(gpu_memory_utilization),
        "kv_cache_max_concurrency": str(tokens / max_model_len),
        "kv_cache_size_tokens": str(tokens), "num_gpu_blocks": str(num_gpu_blocks),
        "num_gpu_blocks_override": str(override), "user_specified_block_size": "False",
    }  # fmt: skip
    return dict(sorted(labels.items()))


def _deferred(core: EngineCore, now: float) -> int:
    """Waiting requests held back by a transient constraint (here: remote KV not yet in)."""
    return sum(1 for r in core.waiting if r.remote_prefill and r.ready_at > now)


class _EngineCollector(Collector):
    """Scheduler gauges and token counters straight from the cores, read at scrape time."""

    def __init__(
        self, model_name: str, cores: Sequence[EngineCore], clock: Callable[[], float],
        created: float,
    ) -> None:  # fmt: skip
        self._model = model_name
        self._cores = cores
        self._clock = clock
        self._created = created

    def _gauge(self, name: str, doc: str, read: Callable[[EngineCore], float]) -> Metric:
        g = GaugeMetricFamily(name, doc, labels=LABELS)
        for i, core in enumerate(self._cores):
            g.add_metric([self._model, str(i)], read(core))
        return g

    def _counter(
        self, name: str, doc: str, read: Callable[[EngineCore], float], extra: Mapping[str, str]
    ) -> Metric:
        c = CounterMetricFamily(name, doc, labels=[*LABELS, *extra])
        for i, core in enumerate(self._cores):
            c.add_metric([self._model, str(i), *extra.values()], read(core), created=self._created)
        return c

    def collect(self) -> Iterable[Metric]:
        now = self._clock()
        yield self._gauge("vllm:num_requests_running", "Number of requests in model execution "
                          "batches.", lambda c: len(c.running))  # fmt: skip
        yield self._gauge("vllm:num_requests_waiting", "Number of requests waiting to be "
                          "processed.", lambda c: len(c.waiting))  # fmt: skip
        by_reason = GaugeMetricFamily(
            "vllm:num_requests_waiting_by_reason",
            "Number of waiting requests by reason.",
            labels=[*LABELS, "reason"],
        )
        sleep = GaugeMetricFamily("vllm:engine_sleep_state", "Engine sleep state.",
                                  labels=[*LABELS, "sleep_state"])  # fmt: skip
        for i, core in enumerate(self._cores):
            deferred = _deferred(core, now)
            by_reason.add_metric([self._model, str(i), "capacity"], len(core.waiting) - deferred)
            by_reason.add_metric([self._model, str(i), "deferred"], deferred)
            for state, value in (("awake", 1), ("weights_offloaded", 0), ("discard_all", 0)):
                sleep.add_metric([self._model, str(i), state], value)
        yield by_reason
        yield sleep
        yield self._gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent "
                          "usage.", lambda c: c.cache.usage)  # fmt: skip
        yield from self._counters()

    def _counters(self) -> Iterable[Metric]:
        hits: Callable[[EngineCore], float] = lambda c: c.counters.prefix_hits  # noqa: E731
        counters: list[tuple[str, str, Callable[[EngineCore], float], dict[str, str]]] = [
            ("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried "
             "tokens.", lambda c: c.counters.prefix_queries, {}),
            ("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.",
             hits, {}),
            *((name, doc, lambda c: 0, {}) for name, doc in ZERO_COUNTERS.items()),
            ("vllm:num_preemptions", "Cumulative number of preemption from the engine.",
             lambda c: c.counters.preemptions, {}),
            ("vllm:prompt_tokens", "Number of prefill tokens processed.",
             lambda c: c.counters.prompt_tokens, {}),
            ("vllm:prompt_tokens_by_source", "Number of prompt tokens by source.",
             lambda c: max(0, c.counters.prompt_tokens - c.counters.prefix_hits),
             {"source": "local_compute"}),
            ("vllm:prompt_tokens_by_source", "", hits, {"source": "local_cache_hit"}),
            ("vllm:prompt_tokens_by_source", "", lambda c: 0, {"source": "external_kv_transfer"}),
            ("vllm:prompt_tokens_cached", "Number of cached prompt tokens (local + external).",
             hits, {}),
            *(("vllm:prompt_tokens_cached_by_source", "Prefix-cache hit tokens by the cache tier "
               "that supplied them.", hits if src == "device" else (lambda c: 0), {"source": src})
              for src in CACHED_SOURCES),
            ("vllm:generation_tokens", "Number of generation tokens processed.",
             lambda c: c.counters.generation_tokens, {}),
        ]  # fmt: skip
        families: dict[str, Metric] = {}
        for name, doc, read, extra in counters:
            family = self._counter(name, doc, read, extra)
            if name in families:
                families[name].samples.extend(family.samples)
            else:
                families[name] = family
        yield from families.values()


class SimMetrics:
    """The registry plus pre-resolved per-engine histogram children."""

    def __init__(
        self, model_name: str, cores: Sequence[EngineCore], cache_info: Mapping[str, str],
        max_model_len: int, clock: Callable[[], float],
    ) -> None:  # fmt: skip
        self.registry = CollectorRegistry()
        self.registry.register(_EngineCollector(model_name, cores, clock, time.time()))
        reg = self.registry
        ttft = Histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token "
                         "in seconds.", LABELS, buckets=TTFT_BUCKETS, registry=reg)  # fmt: skip
        itl = Histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency "
                        "in seconds.", LABELS, buckets=ITL_BUCKETS, registry=reg)  # fmt: skip
        e2e = Histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency "
                        "in seconds.", LABELS, buckets=LATENCY_BUCKETS, registry=reg)  # fmt: skip
        queue = Histogram("vllm:request_queue_time_seconds", "Histogram of time spent in "
                          "WAITING phase for request.", LABELS, buckets=LATENCY_BUCKETS,
                          registry=reg)  # fmt: skip
        success = Counter("vllm:request_success", "Count of successfully processed requests.",
                          [*LABELS, "finished_reason"], registry=reg)  # fmt: skip
        rejections = Counter("vllm:admission_rejections", "Number of admission attempts "
                             "rejected by a queue limit, by reason.", ["model_name", "reason"],
                             registry=reg)  # fmt: skip
        info = Gauge("vllm:cache_config_info", "Information of the LLMEngine CacheConfig",
                     [*cache_info, "engine"], registry=reg)  # fmt: skip
        engines = [str(i) for i in range(len(cores))]
        self._ttft = [ttft.labels(model_name, e) for e in engines]
        self._itl = [itl.labels(model_name, e) for e in engines]
        self._e2e = [e2e.labels(model_name, e) for e in engines]
        self._queue = [queue.labels(model_name, e) for e in engines]
        self._per_request = RequestHistograms(reg, model_name, len(cores), max_model_len)
        self._success = [
            {r: success.labels(model_name, e, r) for r in FINISH_REASONS} for e in engines
        ]
        self._rejections = {r: rejections.labels(model_name, r) for r in REJECT_REASONS}
        for e in engines:
            info.labels(*cache_info.values(), e).set(1)

    def on_tokens(self, engine: int, gaps: list[float]) -> None:
        observe = self._itl[engine].observe
        for gap in gaps:
            observe(gap)

    def on_finish(self, engine: int, req: SimRequest, now: float) -> None:
        if req.first_token is not None:
            self._ttft[engine].observe(req.first_token - req.arrival)
        if req.first_scheduled is not None:
            self._queue[engine].observe(req.first_scheduled - req.arrival)
        self._e2e[engine].observe(now - req.arrival)
        self._per_request.observe(engine, req, now)
        self._success[engine][req.finish_reason].inc()

    def on_rejected(self) -> None:
        """A request refused because the waiting queue is full (``--sim-max-waiting``)."""
        self._rejections["max_num_queued_reqs"].inc()

    def on_abort(self, engine: int) -> None:
        self._success[engine]["abort"].inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
