"""Operator settings, parsed once (CLI flags / environment) into one typed, validated object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PodDefaults:
    """What every engine pod gets unless the pool says otherwise."""

    vllm_image: str = "vllm/vllm-openai:v0.11.0"
    """Image for ``engine.kind: vLLM`` when the pool sets no ``engine.image``."""
    simulator_image: str = "sagellm/sagellm:0.1.0"
    """Image for ``engine.kind: Simulator`` (the project image with ``sagellm sim``)."""
    port: int = 8000
    """HTTP port of vLLM (and of its /metrics)."""
    startup_failure_threshold: int = 180
    """Startup probe: periodSeconds 10 × this = time allowed to download and load the model."""
    vllm_run_as_user: int | None = None
    """Run vLLM containers as this uid with ``runAsNonRoot`` (for images built to run
    non-root). None: the image's user; the official vLLM image needs root (it keeps its cache
    under /root), so root is the default for vLLM pods."""
    gpu_toleration: bool = True
    """Tolerate the usual ``nvidia.com/gpu:NoSchedule`` taint on GPU pods."""
    discovery_bound_seconds: float = 5.0
    """D: how long every router replica may take to see an endpoint leave the routable set
    (watch delivery plus a margin). The drain waits D after marking an instance draining before
    it reads the engine's load, and the engine's preStop hook sleeps D before it does."""


@dataclass(frozen=True)
class AutoscalerSettings:
    """Where the built-in autoscaler reads demand, and how often it decides."""

    interval_seconds: float = 10.0
    """Time between two decisions (each reads every router once)."""
    router_urls: tuple[str, ...] = ()
    """Fixed router base URLs (local runs). Empty: router pods are found by label."""
    router_namespace: str | None = None
    """Namespace of the router pods (None: the first served namespace, or ``default``)."""
    router_selector: str = "app.kubernetes.io/component=router"
    """Label selector of the router pods (the chart labels them so)."""
    router_port: int = 8080
    """Port of the routers' ``/metrics``."""

    def __post_init__(self) -> None:
        if self.interval_seconds <= 0:
            raise ValueError("the autoscale interval must be > 0 seconds")
        if not 0 < self.router_port < 65536:
            raise ValueError(f"router port {self.router_port} is not a TCP port")


@dataclass(frozen=True)
class OperatorSettings:
    namespaces: tuple[str, ...] = ()
    """Namespaces to serve; empty with ``all_namespaces`` means the whole cluster."""
    all_namespaces: bool = True
    api_server: str | None = None
    """Override the API server URL (tests, local runs); else kubeconfig / in-cluster."""
    insecure_skip_tls_verify: bool = False
    """Accept any certificate from an ``https`` ``api_server`` (a local cluster with a
    self-signed certificate). Off: the certificate is verified."""
    metrics_port: int | None = 9090
    liveness_port: int | None = 8080
    """kopf's liveness endpoint ``http://0.0.0.0:<port>/healthz`` (None: off). It answers 200
    once startup finished and while the operator's watch loops are alive."""
    standalone: bool = True
    """No peering: one operator replica (kopf peering needs its own CRD)."""
    peering_name: str = "sagellm-operator"
    resync_seconds: float = 10.0
    """Interval of the level-based timer that re-runs each reconcile."""
    drain_timeout_seconds: int = 600
    """Default upper bound on one drain (pools override it with
    ``spec.lifecycle.drainTimeoutSeconds``): from marking an instance draining to deleting it
    even if its engine still holds requests."""
    drain_poll_seconds: float = 1.0
    """Interval between two reads of a draining engine's ``/metrics``; two consecutive reads
    with nothing running or waiting make it idle."""
    engine_ingress_peers: tuple[dict[str, Any], ...] | None = None
    """NetworkPolicyPeers allowed to reach engine pods on the engine port (router, operator,
    metrics scraper). Set: every pool gets a NetworkPolicy admitting only them and the pool's own
    pods. None: the operator creates no NetworkPolicy."""
    kv_event_peers: tuple[dict[str, Any], ...] | None = None
    """NetworkPolicyPeers allowed to reach the KV-event ports (publisher and replay) of engines
    in ``kv_aware`` pools: the routers. None: the engine ingress peers."""
    max_nodes_per_instance: int = 8
    """Plans needing more nodes per instance are refused (InvalidSpec, with the planner's fix)."""
    pods: PodDefaults = field(default_factory=PodDefaults)
    autoscaler: AutoscalerSettings = field(default_factory=AutoscalerSettings)

    def __post_init__(self) -> None:
        if not self.all_namespaces and not self.namespaces:
            raise ValueError("give --namespace at least once, or --all-namespaces")
        if self.max_nodes_per_instance < 1:
            raise ValueError("the maximum nodes per instance must be at least 1")
        if self.resync_seconds <= 0 or self.drain_timeout_seconds < 0:
            raise ValueError("resync interval must be > 0 and drain timeout >= 0 seconds")
        if self.drain_poll_seconds <= 0 or self.pods.discovery_bound_seconds < 0:
            raise ValueError("drain poll interval must be > 0 and discovery bound >= 0 seconds")
        for name, port in (("metrics", self.metrics_port), ("liveness", self.liveness_port)):
            if port is not None and not 0 < port < 65536:
                raise ValueError(f"{name} port {port} is not a TCP port")
