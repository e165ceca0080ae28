"""vLLM-named Prometheus metrics of one simulator instance (own registry, no globals).

Gauges and token counters are read from the engine cores at scrape time (a custom collector),
so the engine loop does no metric work per step; latency histograms are observed when tokens
are delivered and requests finish. Names, types, labels and buckets follow
``vllm/v1/metrics/loggers.py`` (see docs/simulator.md, "Metrics").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from sagellm_sim.engine import EngineCore, SimRequest

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
LABELS = ("model_name", "engine")
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
               10.0, 20.0, 40.0, 80.0)  # fmt: skip
LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
                   60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)  # fmt: skip
FINISH_REASONS = ("stop", "length", "abort")


class _EngineCollector(Collector):
    """Scheduler gauges and token counters straight from the cores."""

    def __init__(self, model_name: str, cores: Sequence[EngineCore]) -> None:
        self._model = model_name
        self._cores = cores

    def collect(self) -> Iterable[Metric]:
        gauges: dict[str, tuple[str, Callable[[EngineCore], float]]] = {
            "vllm:num_requests_running": ("Number of requests in model execution batches.",
                                          lambda c: len(c.running)),
            "vllm:num_requests_waiting": ("Number of requests waiting to be processed.",
                                          lambda c: len(c.waiting)),
            "vllm:kv_cache_usage_perc": ("KV-cache usage. 1 means 100 percent usage.",
                                         lambda c: c.cache.usage),
        }  # fmt: skip
        for name, (doc, read) in gauges.items():
            g = GaugeMetricFamily(name, doc, labels=LABELS)
            for i, core in enumerate(self._cores):
                g.add_metric([self._model, str(i)], read(core))
            yield g
        counters = {
            "vllm:prefix_cache_queries": ("Prefix cache queries, in terms of number of queried "
                                          "tokens.", "prefix_queries"),
            "vllm:prefix_cache_hits": ("Prefix cache hits, in terms of number of cached tokens.",
                                       "prefix_hits"),
            "vllm:prompt_tokens": ("Number of prefill tokens processed.", "prompt_tokens"),
            "vllm:generation_tokens": ("Number of generation tokens processed.",
                                       "generation_tokens"),
            "vllm:num_preemptions": ("Cumulative number of preemption from the engine.",
                                     "preemptions"),
        }  # fmt: skip
        for name, (doc, attr) in counters.items():
            c = CounterMetricFamily(name, doc, labels=LABELS)
            for i, core in enumerate(self._cores):
                c.add_metric([self._model, str(i)], getattr(core.counters, attr))
            yield c


class SimMetrics:
    """The registry plus pre-resolved per-engine histogram children."""

    def __init__(
        self, model_name: str, cores: Sequence[EngineCore], cache_info: Mapping[str, str]
    ) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_EngineCollector(model_name, cores))
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
        info = Gauge("vllm:cache_config_info", "Information of the LLMEngine CacheConfig",
                     [*cache_info, "engine"], registry=reg)  # fmt: skip
        engines = [str(i) for i in range(len(cores))]
        self._ttft = [ttft.labels(model_name, e) for e in engines]
        self._itl = [itl.labels(model_name, e) for e in engines]
        self._e2e = [e2e.labels(model_name, e) for e in engines]
        self._queue = [queue.labels(model_name, e) for e in engines]
        self._success = [
            {r: success.labels(model_name, e, r) for r in FINISH_REASONS} for e in engines
        ]
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
        self._success[engine][req.finish_reason].inc()

    def on_abort(self, engine: int) -> None:
        self._success[engine]["abort"].inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
