"""Router settings: one typed object parsed once from a YAML file.

Only the static discovery section is re-read at run time (see ``discovery.static``); everything
else needs a restart.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from sagellm_core.api.pool import SchedulingSpec
from sagellm_router.types import Endpoint, PoolSnapshot, Role

DEFAULT_STRATEGY = "load_balanced"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Model):
    """Where the router listens and how it shuts down."""

    host: str = "0.0.0.0"
    port: int = Field(8080, ge=0, le=65535)
    client_max_size: int = Field(4 * 1024 * 1024, gt=0, description="max request body, bytes")
    shutdown_timeout_s: float = Field(30.0, ge=0, description="time to drain in-flight requests")
    # -- router edge: shutdown and probes (docs/router.md "Shutdown") --
    prestop_delay_s: float = Field(
        5.0, ge=0, description="after SIGTERM: /ready 503 but keep serving this long"
    )
    probe_port: int | None = Field(
        None, ge=0, le=65535, description="also serve /health, /ready, /metrics on this port"
    )


class EndpointSettings(_Model):
    """One engine of a static pool."""

    url: str
    role: Role = Role.GENERAL
    weight: float = Field(1.0, gt=0)
    instance: str | None = None
    ready: bool = True
    draining: bool = False
    max_concurrency: int | None = Field(None, gt=0, description="admission slots (engine seqs)")
    gpus: int | None = Field(None, gt=0)
    tokens_per_s: float | None = Field(None, gt=0, description="declared output throughput")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"endpoint url {value!r} must start with http:// or https://")
        return value.rstrip("/")


class PoolSettings(_Model):
    """A static pool: a model served by a list of endpoints.

    ``scheduling`` mirrors the InferencePool CRD's ``spec.scheduling`` (camelCase or snake_case
    keys); ``policy`` is a shorthand for ``scheduling.policy`` and wins when both are set.
    """

    name: str
    model: str
    task: Literal["generate", "embed"] = "generate"
    created_at: datetime.datetime | None = Field(
        None, description="RFC 3339 time; decides model-name ownership before file order"
    )
    routing: str | None = None
    policy: str | None = None
    scheduling: SchedulingSpec = Field(default_factory=SchedulingSpec)
    endpoints: list[EndpointSettings] = Field(default_factory=list)

    def snapshot(self, order: int = 0) -> PoolSnapshot:
        endpoints = tuple(
            Endpoint(
                url=e.url,
                instance=e.instance or f"{self.name}-{i}",
                role=e.role,
                weight=e.weight,
                ready=e.ready,
                draining=e.draining,
                max_concurrency=e.max_concurrency,
                gpus=e.gpus,
                tokens_per_s=e.tokens_per_s,
            )
            for i, e in enumerate(self.endpoints)
        )
        policy = str(self.policy) if self.policy else None
        routing = self.routing
        if routing is None and "routing" in self.scheduling.model_fields_set:
            routing = str(self.scheduling.routing)
        return PoolSnapshot(
            self.name, self.model, routing, policy, endpoints, scheduling=self.scheduling,
            task=self.task, created=self._created(), order=order,
        )  # fmt: skip

    def _created(self) -> str | None:
        when = self.created_at
        if when is None:
            return None
        return (when if when.tzinfo else when.replace(tzinfo=datetime.UTC)).isoformat()


class StaticDiscoverySettings(_Model):
    """Pools listed in this file; the file is polled for changes every ``poll_interval_s``."""

    type: Literal["static"] = "static"
    poll_interval_s: float = Field(2.0, gt=0)
    pools: list[PoolSettings] = Field(default_factory=list)


class KubernetesDiscoverySettings(_Model):
    """InferencePool objects watched through the Kubernetes API."""

    type: Literal["kubernetes"]
    namespace: str | None = None
    all_namespaces: bool = False
    namespaces: tuple[str, ...] = Field(
        (), description="allow-list: watch the cluster, keep only pools in these namespaces"
    )
    kubeconfig: str | None = None
    backoff_initial_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    watch_timeout_s: int = Field(300, gt=0)


DiscoverySettings = Annotated[
    StaticDiscoverySettings | KubernetesDiscoverySettings, Field(discriminator="type")
]


class ReplicaSyncSettings(_Model):
    """kv_aware: share every pick with the other router replicas (docs/router.md, "Router
    replicas share their picks"). Off while ``port`` is null."""

    port: int | None = Field(None, ge=1, le=65535, description="publish this replica's picks here")
    host: str = Field("*", description="address to bind the publisher on (*: IPv4 and IPv6)")
    peers: tuple[str, ...] = Field((), description="host:port of the other replicas' publishers")
    peers_dns: str | None = Field(
        None, description="name:port; every address of name is a peer (a headless Service)"
    )
    resolve_interval_s: float = Field(10.0, gt=0, description="re-resolve peers_dns this often")

    @field_validator("peers")
    @classmethod
    def _peers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for peer in value:
            host_port(peer)
        return value

    @field_validator("peers_dns")
    @classmethod
    def _peers_dns(cls, value: str | None) -> str | None:
        if value is not None:
            host_port(value)
        return value

    @model_validator(mode="after")
    def _needs_port(self) -> ReplicaSyncSettings:
        if self.port is None and (self.peers or self.peers_dns):
            raise ValueError("peers and peers_dns need port: the replicas publish on it")
        return self


def host_port(value: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) split; ValueError names what is wrong."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} must be host:port")
    return host.strip("[]"), int(port)


class RoutingSettings(_Model):
    """Default strategy (used when neither the pool nor the request names one) and parameters."""

    default: str = DEFAULT_STRATEGY
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    replica_sync: ReplicaSyncSettings = Field(default_factory=ReplicaSyncSettings)


class LimitSettings(_Model):
    """Admission limits."""

    max_concurrent_requests: int = Field(
        4096, gt=0, description="requests inside the router (queued + running); beyond: 429"
    )
    max_in_flight_per_endpoint: int = Field(
        256, gt=0, description="admission slots per endpoint unless the endpoint sets its own"
    )
    max_embedding_inputs: int = Field(
        2048, gt=0, description="inputs per /v1/embeddings request; beyond: 400"
    )


class QueueSettings(_Model):
    """Router-side admission-queue knobs (per-pool settings come from ``scheduling``)."""

    tick_interval_s: float = Field(0.25, gt=0, description="re-evaluate queues this often")
    aging_interval_s: float | None = Field(30.0, gt=0, description="priority aging; null: off")
    shed_on_slo_miss: bool = False
    adaptive_min_dwell_s: float = Field(30.0, ge=0, description="adaptive: min time per mode")


class PdAutoSettings(_Model):
    """Online tuning of the PD threshold (``pdThresholdMode: Auto``); see docs/router.md."""

    min_tokens: int = Field(32, gt=0)
    max_tokens: int = Field(32768, gt=0)
    step: float = Field(1.25, gt=1, description="threshold moves by this factor at most")
    min_samples: int = Field(8, gt=0, description="per bucket and path before a move")
    explore_every: int = Field(8, gt=1, description="1 in N boundary requests takes the other path")
    margin: float = Field(0.1, ge=0, lt=1, description="relative advantage needed to move")
    itl_tokens: int = Field(32, ge=0, description="cost = TTFT + itl_tokens x mean ITL")
    cooldown_s: float = Field(5.0, ge=0, description="min time between moves")


class PdSettings(_Model):
    """Prefill/decode orchestration for pools with Prefill and Decode endpoints."""

    enabled: bool = True
    prefill_routing: str = DEFAULT_STRATEGY
    decode_routing: str | None = Field(None, description="null: the pool's strategy")
    prefill_timeout_s: float = Field(60.0, gt=0)
    auto: PdAutoSettings = Field(default_factory=PdAutoSettings)


class AdminSettings(_Model):
    """``POST /admin/policy`` and ``GET /admin/status``; off unless enabled.

    With ``port`` set they are served only on ``host:port`` (loopback by default), without a
    key; otherwise on the main port, and only with a valid API key.
    """

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=0, le=65535)


# -- router edge: limits shared by both HTTP front ends (docs/router.md "Edge limits") --
class EdgeSettings(_Model):
    """Bounds on client connections to the main port (both front ends)."""

    max_connections: int = Field(4096, gt=0, description="open client connections; beyond: 503")
    max_buffered_bytes: int = Field(
        64 * 1024 * 1024, gt=0, description="request bytes held across connections; beyond: 503"
    )
    head_timeout_s: float = Field(10.0, gt=0, description="first byte to end of request head")
    body_timeout_s: float = Field(30.0, gt=0, description="end of head to end of body")
    keepalive_s: float = Field(75.0, gt=0, le=75, description="idle keep-alive connections")


class RetrySettings(_Model):
    """Retries on another endpoint for connect errors, 5xx and first-byte timeouts."""

    max_attempts: int = Field(3, ge=1)
    backoff_initial_s: float = Field(0.02, ge=0)
    backoff_max_s: float = Field(0.5, ge=0)
    max_failovers: int = Field(
        2, ge=0, description="mid-stream failovers per stream (pools with midStreamFailover)"
    )


class TimeoutSettings(_Model):
    """Upstream timeouts per request (see docs/router.md, "Hung and dead engines")."""

    connect_s: float = Field(3.0, gt=0)
    first_byte_s: float = Field(
        30.0, gt=0, description="streams: request sent -> first event; then retried elsewhere"
    )
    stall_s: float = Field(
        20.0, gt=0, description="streams: max silence between events; then failover"
    )
    read_idle_s: float = Field(
        300.0, gt=0, description="non-streaming: max wait for the answer (it comes whole)"
    )
    total_s: float = Field(900.0, gt=0)


class HealthSettings(_Model):
    """Passive health: eject after consecutive failures (at once for a timeout); re-admit only
    after a completion probe (an embeddings probe for embed pools) succeeds, probing with
    exponential backoff from ``probe_interval_s`` up to ``probe_backoff_max_s``."""

    failure_threshold: int = Field(3, ge=1)
    probe_interval_s: float = Field(1.0, gt=0)
    probe_backoff_max_s: float = Field(30.0, gt=0)
    probe_timeout_s: float = Field(5.0, gt=0)


class ScrapeSettings(_Model):
    """Scraping of each endpoint's /metrics."""

    enabled: bool = True
    interval_s: float = Field(1.0, gt=0)
    timeout_s: float = Field(1.0, gt=0)
    concurrency: int = Field(16, gt=0)
    stale_after_s: float = Field(10.0, gt=0)


class AuthSettings(_Model):
    """Optional API keys for /v1/*: one key per line in a file, or a comma list in an env var."""

    api_keys_file: str | None = None
    api_keys_env: str | None = None
    reload_interval_s: float = Field(
        5.0, gt=0, description="re-read api_keys_file this often; a changed file takes effect"
    )

    def load_keys(self) -> tuple[str, ...]:
        keys: list[str] = []
        if self.api_keys_file:
            text = Path(self.api_keys_file).read_text(encoding="utf-8")
            keys += [line.strip() for line in text.splitlines()]
        if self.api_keys_env:
            keys += os.environ.get(self.api_keys_env, "").split(",")
        return tuple(k.strip() for k in keys if k.strip() and not k.strip().startswith("#"))


class RouterSettings(_Model):
    """Everything the router reads from its config file."""

    server: ServerSettings = Field(default_factory=ServerSettings)
    discovery: DiscoverySettings = Field(default_factory=StaticDiscoverySettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    pd: PdSettings = Field(default_factory=PdSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
    retries: RetrySettings = Field(default_factory=RetrySettings)
    timeouts: TimeoutSettings = Field(default_factory=TimeoutSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    scrape: ScrapeSettings = Field(default_factory=ScrapeSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    edge: EdgeSettings = Field(default_factory=EdgeSettings)
    plugins: list[str] = Field(
        default_factory=list,
        description="extra strategies/policies: 'package.module:factory' (see custom-scheduling)",
    )


class ConfigError(Exception):
    """The config file is missing, not YAML, or does not match the schema."""


def parse_settings(text: str, source: str = "<config>") -> RouterSettings:
    """Parse YAML text into settings; errors name the file and the offending field."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping, got {type(data).__name__}")
    try:
        return RouterSettings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{source}: {problems}") from exc


def load_settings(path: str | Path) -> RouterSettings:
    """Read and parse the config file at ``path``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    return parse_settings(text, str(path))
