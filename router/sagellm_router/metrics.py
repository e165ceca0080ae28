"""Router Prometheus metrics, registered on a registry owned by one app (no globals)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class RouterMetrics:
    """All ``sagellm_router_*`` series; see docs/router.md for their meaning."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._define_request_metrics(self.registry)
        self._define_endpoint_metrics(self.registry)
        self._define_scheduling_metrics(self.registry)
        self._define_pd_metrics(self.registry)

    def _define_request_metrics(self, r: CollectorRegistry) -> None:
        self.requests = Counter(
            "sagellm_router_requests",
            "Requests answered, by model, pool, endpoint and HTTP status",
            ["model", "pool", "endpoint", "status"],
            registry=r,
        )
        self.e2e = Histogram(
            "sagellm_router_e2e_latency_seconds",
            "Time from request arrival to the last response byte",
            ["model", "pool"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "sagellm_router_ttft_seconds",
            "Time from request arrival to the first upstream response byte",
            ["model", "pool"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.itl = Histogram(
            "sagellm_router_inter_token_latency_seconds",
            "Gap between consecutive streamed chunks",
            ["model", "pool"],
            buckets=_ITL_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "sagellm_router_tokens",
            "Tokens reported by upstream usage, direction=in (prompt) or out (completion)",
            ["model", "direction"],
            registry=r,
        )

    def _define_endpoint_metrics(self, r: CollectorRegistry) -> None:
        self.in_flight = Gauge(
            "sagellm_router_in_flight_requests",
            "Requests being proxied, by endpoint",
            ["pool", "endpoint"],
            registry=r,
        )
        self.retries = Counter(
            "sagellm_router_retries",
            "Attempts repeated on another endpoint, by reason",
            ["pool", "endpoint", "reason"],
            registry=r,
        )
        self.ejections = Counter(
            "sagellm_router_endpoint_ejections",
            "Endpoints ejected by passive health checks, by the failure that ejected them",
            ["pool", "endpoint", "reason"],
            registry=r,
        )
        self.failovers = Counter(
            "sagellm_router_stream_failovers",
            "Streams continued on another endpoint after a mid-stream failure (outcome: "
            "continued, refused, failed)",
            ["pool", "reason", "outcome"],
            registry=r,
        )
        self.endpoints = Gauge(
            "sagellm_router_endpoints",
            "Known endpoints by pool and state (routable, draining, not_ready, ejected)",
            ["pool", "state"],
            registry=r,
        )

    def _define_scheduling_metrics(self, r: CollectorRegistry) -> None:
        self.queued = Gauge(
            "sagellm_router_queued_requests",
            "Requests waiting in the pool's admission queue",
            ["pool"],
            registry=r,
        )
        self.admitted_active = Gauge(
            "sagellm_router_admitted_requests",
            "Requests holding an admission slot",
            ["pool"],
            registry=r,
        )
        self.queue_wait = Histogram(
            "sagellm_router_queue_wait_seconds",
            "Time from arrival to admission, by priority",
            ["pool", "priority"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rejections = Counter(
            "sagellm_router_admission_rejections",
            "Requests refused by admission (rate_limited, queue_full, queue_timeout, shed, "
            "over_budget)",
            ["pool", "kind"],
            registry=r,
        )
        self.slo = Counter(
            "sagellm_router_slo",
            "Requests with an SLO, by outcome (attained, violated)",
            ["pool", "outcome"],
            registry=r,
        )
        self.policy = Gauge(
            "sagellm_router_scheduling_policy",
            "1 for the pool's configured policy and the one in force (differs under adaptive)",
            ["pool", "policy", "active"],
            registry=r,
        )

    def _define_pd_metrics(self, r: CollectorRegistry) -> None:
        self.pd_requests = Counter(
            "sagellm_router_pd_requests",
            "Requests of disaggregated pools by path (pd = prefill then decode; direct)",
            ["pool", "path"],
            registry=r,
        )
        self.pd_fallbacks = Counter(
            "sagellm_router_pd_fallbacks",
            "PD requests served decode-only after the prefill leg failed, by reason",
            ["pool", "reason"],
            registry=r,
        )
        self.pd_leg = Histogram(
            "sagellm_router_pd_leg_seconds",
            "PD leg latency: prefill (whole leg), decode (dispatch to first byte)",
            ["pool", "leg"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.pd_threshold = Gauge(
            "sagellm_router_pd_threshold_tokens",
            "Uncached prompt tokens from which requests go prefill-then-decode",
            ["pool"],
            registry=r,
        )

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, cached: label lookup is costly on the hot path."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child
