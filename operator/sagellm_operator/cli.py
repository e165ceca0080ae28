"""``sagellm operator``: run the kopf operator in code with settings parsed once."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import click
import kopf
from prometheus_client import start_http_server

from sagellm_operator.handlers import build_registry
from sagellm_operator.metrics import Metrics
from sagellm_operator.settings import AutoscalerSettings, OperatorSettings, PodDefaults


def configure_logging(verbose: bool) -> None:
    """One JSON object per line (kopf's own JSON formatter: quotes, newlines and tracebacks in
    a message stay valid JSON), with the object a handler works on under ``object``."""
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.JSON, log_refkey="object")


async def run(
    settings: OperatorSettings, metrics: Metrics, stop: asyncio.Event | None = None,
    ready: threading.Event | None = None,
) -> None:  # fmt: skip
    """Run until ``stop`` is set (or forever); usable from tests and benchmarks. ``ready`` is
    set once kopf has started all its tasks (cancelling it earlier leaves some never awaited)."""
    registry = build_registry(settings, metrics)
    await kopf.operator(
        registry=registry,
        clusterwide=settings.all_namespaces,
        namespaces=list(settings.namespaces),
        standalone=settings.standalone,
        peering_name=None if settings.standalone else settings.peering_name,
        stop_flag=stop,
        ready_flag=ready,
        memo=kopf.Memo(),
        liveness_endpoint=(
            f"http://0.0.0.0:{settings.liveness_port}/healthz" if settings.liveness_port else None
        ),
    )


def parse_peers(
    text: str | None, flag: str = "--engine-ingress-peers"
) -> tuple[dict[str, Any], ...] | None:
    """A JSON list of objects (NetworkPolicyPeers) given to ``flag``."""
    if text is None:
        return None
    try:
        peers = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{flag} is not JSON: {exc}") from exc
    if not isinstance(peers, list) or not all(isinstance(p, dict) and p for p in peers):
        raise ValueError(f"{flag} must be a JSON list of NetworkPolicyPeer objects")
    return tuple(peers)


@click.command("operator")
@click.option("--namespace", "namespaces", multiple=True, help="Namespace to serve (repeatable).")
@click.option("--all-namespaces", is_flag=True, help="Serve every namespace (the default).")
@click.option("--api-server", envvar="SAGELLM_API_SERVER", help="API server URL override.")
@click.option("--insecure-skip-tls-verify", is_flag=True,
              help="Do not verify the --api-server's TLS certificate (self-signed local "
              "clusters only).")  # fmt: skip
@click.option("--metrics-port", type=int, default=9090, show_default=True, help="0 disables.")
@click.option("--liveness-port", type=int, default=8080, show_default=True,
              help="Serve http://0.0.0.0:PORT/healthz (kopf liveness); 0 disables.")  # fmt: skip
@click.option("--peering/--standalone", default=False, help="kopf peering (needs its CRD).")
@click.option("--resync-seconds", type=float, default=10.0, show_default=True)
@click.option(
    "--drain-timeout",
    type=int,
    default=600,
    show_default=True,
    help="Default max seconds of one drain (pool: spec.lifecycle.drainTimeoutSeconds).",
)
@click.option(
    "--discovery-bound",
    type=float,
    default=5.0,
    show_default=True,
    help="D: seconds every router may take to see an endpoint as draining.",
)
@click.option(
    "--drain-poll",
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds between two reads of a draining engine's /metrics.",
)
@click.option("--vllm-image", default=PodDefaults.vllm_image, show_default=True)
@click.option("--simulator-image", default=PodDefaults.simulator_image, show_default=True)
@click.option(
    "--max-nodes-per-instance",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Refuse plans needing more nodes per instance.",
)
@click.option(
    "--vllm-run-as-user",
    type=click.IntRange(min=1),
    default=None,
    help="Run vLLM containers as this uid with runAsNonRoot (image must allow it; "
    "default: the image's user, root for the official vLLM image).",
)
@click.option(
    "--engine-ingress-peers",
    default=None,
    metavar="JSON",
    help="JSON list of NetworkPolicyPeers (router, operator, metrics scraper) allowed "
    "to reach engine pods; each pool then gets a NetworkPolicy admitting only "
    "them (engine port) and its own pods. Unset: no NetworkPolicy.",
)
@click.option(
    "--kv-event-peers",
    default=None,
    metavar="JSON",
    help="JSON list of NetworkPolicyPeers (the routers) allowed to reach the KV-event ports "
    "of engines in kv_aware pools. Unset: the --engine-ingress-peers.",
)
@click.option("--autoscale-interval", type=float, default=10.0, show_default=True,
              help="Seconds between two autoscaling decisions (pools with "
              "spec.autoscaling.enabled).")  # fmt: skip
@click.option("--router-url", "router_urls", multiple=True,
              help="Router base URL whose /metrics the autoscaler reads (repeatable); "
              "unset: router pods found by --router-selector.")  # fmt: skip
@click.option(
    "--router-namespace",
    default=None,
    help="Namespace of the router pods (default: the first --namespace, or default).",
)
@click.option("--router-selector", default=AutoscalerSettings.router_selector,
              show_default=True, help="Label selector of the router pods.")  # fmt: skip
@click.option("--router-port", type=int, default=AutoscalerSettings.router_port,
              show_default=True, help="Port of the router pods' /metrics.")  # fmt: skip
@click.option("--verbose", is_flag=True)
def operator(namespaces: tuple[str, ...], all_namespaces: bool, api_server: str | None,
             insecure_skip_tls_verify: bool, metrics_port: int, liveness_port: int,
             peering: bool, resync_seconds: float,
             drain_timeout: int, discovery_bound: float, drain_poll: float, vllm_image: str,
             simulator_image: str, max_nodes_per_instance: int, vllm_run_as_user: int | None,
             engine_ingress_peers: str | None, kv_event_peers: str | None,
             autoscale_interval: float,
             router_urls: tuple[str, ...], router_namespace: str | None, router_selector: str,
             router_port: int, verbose: bool) -> None:  # fmt: skip
    """Reconcile InferencePools and ExecutionInstances into vLLM pods."""
    try:
        settings = OperatorSettings(
            namespaces=namespaces, all_namespaces=all_namespaces or not namespaces,
            api_server=api_server, insecure_skip_tls_verify=insecure_skip_tls_verify,
            metrics_port=metrics_port or None,
            liveness_port=liveness_port or None, standalone=not peering,
            resync_seconds=resync_seconds, drain_timeout_seconds=drain_timeout,
            drain_poll_seconds=drain_poll, max_nodes_per_instance=max_nodes_per_instance,
            engine_ingress_peers=parse_peers(engine_ingress_peers),
            kv_event_peers=parse_peers(kv_event_peers, "--kv-event-peers"),
            pods=PodDefaults(vllm_image=vllm_image, simulator_image=simulator_image,
                             vllm_run_as_user=vllm_run_as_user,
                             discovery_bound_seconds=discovery_bound),
            autoscaler=AutoscalerSettings(
                interval_seconds=autoscale_interval, router_urls=router_urls,
                router_namespace=router_namespace, router_selector=router_selector,
                router_port=router_port),
        )  # fmt: skip
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    configure_logging(verbose)
    metrics = Metrics()
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=metrics.registry)
    asyncio.run(run(settings, metrics))
