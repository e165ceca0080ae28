"""Per-request histograms observed when a request finishes, as vLLM 0.32 exports them.

Input: a finished ``SimRequest`` (token counts, preemptions, arrival / first-scheduled /
first-token times) and the finish time. Names, documentation and buckets were read from a real
vLLM 0.32 ``/metrics`` page: token-count histograms use 1-2-5 buckets up to ``max_model_len``.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Histogram

from sagellm_sim.engine import SimRequest

LABELS = ("model_name", "engine")
LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
                   60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)  # fmt: skip
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0, 20.0, 40.0, 80.0)  # fmt: skip
Reading = Callable[[SimRequest, float], float | None]


def buckets_1_2_5(limit: int) -> tuple[float, ...]:
    """vLLM's ``build_1_2_5_buckets``: 1, 2, 5, 10, 20, 50, ... up to ``limit``."""
    out: list[float] = []
    scale = 1
    while True:
        for m in (1, 2, 5):
            if m * scale > limit:
                return tuple(out)
            out.append(float(m * scale))
        scale *= 10


def _since(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start


def _tpot(req: SimRequest, now: float) -> float | None:
    if req.first_token is None or req.num_output < 2:
        return None
    return (now - req.first_token) / (req.num_output - 1)


def _definitions(max_model_len: int) -> dict[str, tuple[str, tuple[float, ...], Reading]]:
    tokens = buckets_1_2_5(max_model_len)
    return {
        "vllm:request_prompt_tokens": ("Number of prefill tokens processed.", tokens,
                                       lambda r, _: r.prompt_len),
        "vllm:request_generation_tokens": ("Number of generation tokens processed.", tokens,
                                           lambda r, _: r.num_output),
        "vllm:request_max_num_generation_tokens": (
            "Histogram of maximum number of requested generation tokens.", tokens,
            lambda r, _: r.max_tokens),
        "vllm:request_params_n": ("Histogram of the n request parameter.",
                                  (1.0, 2.0, 5.0, 10.0, 20.0), lambda r, _: 1),
        "vllm:request_params_max_tokens": ("Histogram of the max_tokens request parameter.",
                                           tokens, lambda r, _: r.max_tokens),
        "vllm:request_time_per_output_token_seconds": (
            "Histogram of time_per_output_token_seconds per request.", TPOT_BUCKETS, _tpot),
        "vllm:request_inference_time_seconds": (
            "Histogram of time spent in RUNNING phase for request.", LATENCY_BUCKETS,
            lambda r, now: _since(r.first_scheduled, now)),
        "vllm:request_prefill_time_seconds": (
            "Histogram of time spent in PREFILL phase for request.", LATENCY_BUCKETS,
            lambda r, _: _since(r.first_scheduled, r.first_token)),
        "vllm:request_decode_time_seconds": (
            "Histogram of time spent in DECODE phase for request.", LATENCY_BUCKETS,
            lambda r, now: _since(r.first_token, now)),
        "vllm:request_num_preemptions": (
            "Histogram of the number of times a request was preempted.",
            (1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0), lambda r, _: r.num_preemptions),
        "vllm:request_prefill_kv_computed_tokens": (
            "Histogram of new KV tokens computed during prefill (excluding cached tokens).",
            tokens, lambda r, _: max(0, r.prompt_len - r.cached_tokens)),
    }  # fmt: skip


class RequestHistograms:
    """The per-request histograms of every engine, registered in ``registry``."""

    def __init__(
        self, registry: CollectorRegistry, model_name: str, engines: int, max_model_len: int
    ) -> None:
        self._series: list[tuple[Reading, list[Histogram]]] = []
        for name, (doc, buckets, read) in _definitions(max_model_len).items():
            hist = Histogram(name, doc, LABELS, buckets=buckets, registry=registry)
            children = [hist.labels(model_name, str(e)) for e in range(engines)]
            self._series.append((read, children))

    def observe(self, engine: int, req: SimRequest, now: float) -> None:
        for read, children in self._series:
            value = read(req, now)
            if value is not None:
                children[engine].observe(value)
