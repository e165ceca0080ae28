"""Bookkeeping of the manager's requests and the metrics computed from it (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from control_plane.types import PerformanceMetrics, RequestStatus


@dataclass
class Record:
    """One submitted request as the manager tracks it (times on the manager's clock)."""

    request_id: str
    submitted_s: float
    slo_deadline_ms: float | None = None
    status: RequestStatus = RequestStatus.QUEUED
    finished_s: float | None = None
    instance: str = ""
    prefill_instance: str = ""
    http_status: int = 0
    error: str | None = None
    output: dict[str, Any] = field(default_factory=dict)
    completion_tokens: int = 0

    def finish(self, status: int, body: bytes) -> None:
        """Record the answer: COMPLETED on 200, else FAILED with the server's message."""
        self.http_status = status
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            payload = {"raw": body.decode("utf-8", "replace")}
        self.output = payload if isinstance(payload, dict) else {"raw": payload}
        if status == 200:
            self.status = RequestStatus.COMPLETED
            usage = self.output.get("usage") or {}
            self.completion_tokens = int(usage.get("completion_tokens") or 0)
            return
        self.status = RequestStatus.FAILED
        error = self.output.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        self.error = f"HTTP {status}: {message or 'upstream error'}"

    @property
    def latency_ms(self) -> float | None:
        if self.finished_s is None:
            return None
        return (self.finished_s - self.submitted_s) * 1000.0

    def slo_met(self) -> bool | None:
        if self.slo_deadline_ms is None or self.status not in _FINAL:
            return None
        if self.status is RequestStatus.CANCELLED:
            return None
        latency = self.latency_ms
        return (
            self.status is RequestStatus.COMPLETED
            and latency is not None
            and (latency <= self.slo_deadline_ms)
        )


_FINAL = (RequestStatus.COMPLETED, RequestStatus.FAILED, RequestStatus.CANCELLED)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def summarize(records: list[Record], elapsed_s: float) -> PerformanceMetrics:
    """Request counts, latency percentiles, throughput and SLO compliance of ``records``."""
    by = {s: [r for r in records if r.status is s] for s in RequestStatus}
    done = by[RequestStatus.COMPLETED]
    latencies = [r.latency_ms for r in done if r.latency_ms is not None]
    slo = [m for m in (r.slo_met() for r in records) if m is not None]
    violations = sum(1 for m in slo if not m)
    span = max(elapsed_s, 1e-9)
    return PerformanceMetrics(
        total_requests=len(records),
        completed_requests=len(done),
        failed_requests=len(by[RequestStatus.FAILED]),
        cancelled_requests=len(by[RequestStatus.CANCELLED]),
        active_requests=len(by[RequestStatus.RUNNING]),
        queued_requests=len(by[RequestStatus.QUEUED]),
        avg_latency_ms=sum(latencies) / len(latencies) if latencies else 0.0,
        p50_latency_ms=percentile(latencies, 0.50),
        p95_latency_ms=percentile(latencies, 0.95),
        p99_latency_ms=percentile(latencies, 0.99),
        tokens_per_second=sum(r.completion_tokens for r in done) / span,
        requests_per_second=len(done) / span,
        slo_violations=violations,
        slo_compliance_rate=1.0 - violations / len(slo) if slo else 1.0,
    )
