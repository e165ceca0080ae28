"""Router settings: one typed object parsed once from a YAML file.

Only the static discovery section is re-read at run time (see ``discovery.static``); everything
else needs a restart.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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


class EndpointSettings(_Model):
    """One engine of a static pool."""

    url: str
    role: Role = Role.GENERAL
    weight: float = Field(1.0, gt=0)
    instance: str | None = None
    ready: bool = True
    draining: bool = False

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"endpoint url {value!r} must start with http:// or https://")
        return value.rstrip("/")


class PoolSettings(_Model):
    """A static pool: a model served by a list of endpoints."""

    name: str
    model: str
    routing: str | None = None
    policy: str | None = None
    endpoints: list[EndpointSettings] = Field(default_factory=list)

    def snapshot(self) -> PoolSnapshot:
        endpoints = tuple(
            Endpoint(
                url=e.url,
                instance=e.instance or f"{self.name}-{i}",
                role=e.role,
                weight=e.weight,
                ready=e.ready,
                draining=e.draining,
            )
            for i, e in enumerate(self.endpoints)
        )
        return PoolSnapshot(self.name, self.model, self.routing, self.policy, endpoints)


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
    kubeconfig: str | None = None
    backoff_initial_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    watch_timeout_s: int = Field(300, gt=0)


DiscoverySettings = Annotated[
    StaticDiscoverySettings | KubernetesDiscoverySettings, Field(discriminator="type")
]


class RoutingSettings(_Model):
    """Default strategy (used when neither the pool nor the request names one) and parameters."""

    default: str = DEFAULT_STRATEGY
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)


class LimitSettings(_Model):
    """Admission limits."""

    max_concurrent_requests: int = Field(4096, gt=0, description="beyond this: 429")
    max_in_flight_per_endpoint: int = Field(256, gt=0, description="saturation point")


class RetrySettings(_Model):
    """Retries on another endpoint for connect errors and 5xx before the first byte."""

    max_attempts: int = Field(3, ge=1)
    backoff_initial_s: float = Field(0.02, ge=0)
    backoff_max_s: float = Field(0.5, ge=0)


class TimeoutSettings(_Model):
    """Upstream timeouts per request."""

    connect_s: float = Field(3.0, gt=0)
    read_idle_s: float = Field(300.0, gt=0, description="max silence between upstream bytes")
    total_s: float = Field(900.0, gt=0)


class HealthSettings(_Model):
    """Passive health: eject after consecutive failures, re-admit after a good /health probe."""

    failure_threshold: int = Field(3, ge=1)
    probe_interval_s: float = Field(2.0, gt=0)
    probe_timeout_s: float = Field(1.0, gt=0)


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
    retries: RetrySettings = Field(default_factory=RetrySettings)
    timeouts: TimeoutSettings = Field(default_factory=TimeoutSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    scrape: ScrapeSettings = Field(default_factory=ScrapeSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)


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
