"""Operator Prometheus metrics, on a registry owned by one operator instance (no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.reconciles = Counter(
            "sagellm_operator_reconcile_total", "Reconcile runs by kind and result.",
            ["kind", "result"], registry=self.registry,
        )  # fmt: skip
        self.duration = Histogram(
            "sagellm_operator_reconcile_duration_seconds", "Reconcile duration by kind.",
            ["kind"], registry=self.registry,
        )  # fmt: skip
        self.pools = Gauge(
            "sagellm_operator_pools", "InferencePools by phase.", ["phase"], registry=self.registry
        )
        self.instances = Gauge(
            "sagellm_operator_instances", "ExecutionInstances by phase.", ["phase"],
            registry=self.registry,
        )  # fmt: skip
        self.decisions = Counter(
            "sagellm_operator_decisions_total", "Actions taken (create, update, drain, delete).",
            ["kind", "action"], registry=self.registry,
        )  # fmt: skip
