"""What every reconcile needs: the API, settings, metrics, a clock and per-object locks."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sagellm_core.ownership import Claim
from sagellm_operator.engine import engine_load
from sagellm_operator.k8s import Kube
from sagellm_operator.metrics import Metrics
from sagellm_operator.reconcile.coalesce import Coalescer
from sagellm_operator.reconcile.kopftools import Events
from sagellm_operator.reconcile.lookup import ApiLookup, Lookup
from sagellm_operator.settings import OperatorSettings

Obj = dict[str, Any]


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


def iso(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Context:
    kube: Kube
    settings: OperatorSettings
    metrics: Metrics
    clock: Callable[[], datetime.datetime] = utcnow
    events: Events = field(default_factory=Events)
    """Kubernetes Events, posted through kopf."""
    indices: Lookup | None = None
    """kopf's indices of the watched objects (None: look up through the API)."""
    _locks: dict[tuple[str, str, str], asyncio.Lock] = field(default_factory=dict)
    children: Coalescer = field(default_factory=lambda: Coalescer(0.05))
    """Pool reconciles triggered by instance events, coalesced per pool: creating or updating N
    instances makes a burst of events that needs one pool reconcile, not N."""
    policies: set[tuple[str, str]] = field(default_factory=set)
    """(pool uid, policy hash) of engine NetworkPolicies applied since the last resync pass."""
    claims: dict[str, Claim] = field(default_factory=dict)
    """Model-name claims of the pools in scope by ``namespace/name`` (see reconcile.accepted)."""
    engine_load: Callable[[str], Awaitable[float | None]] = engine_load
    """Running + waiting requests of the engine at a URL (None: unreadable)."""
    idle_reads: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """Consecutive idle reads of draining instances, by (namespace, pool), then instance name;
    lost on restart, which only costs two more reads."""
    drain_acks: dict[tuple[str, str], dict[str, datetime.datetime]] = field(default_factory=dict)
    """When every router replica was seen listing a draining instance, by (namespace, pool),
    then instance name; lost on restart, which only costs the rest of ``D``."""
    plans: dict[tuple[str, int], Any] = field(default_factory=dict)
    """Validation + planning results by (pool uid, generation): the spec is immutable per
    generation, and CEL evaluation is too slow to repeat on every event."""
    generations: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    """(uid, generation) of the newest pool spec reconciled, by (namespace, pool): a copy that
    waited for the pool's lock behind a newer one is read again rather than acted on."""

    @property
    def lookup(self) -> Lookup:
        return self.indices or ApiLookup(self.kube, self.settings)

    def lock(self, kind: str, ns: str, name: str) -> asyncio.Lock:
        """One lock per object so event-, timer- and change-driven reconciles never overlap."""
        return self._locks.setdefault((kind, ns, name), asyncio.Lock())

    @contextlib.asynccontextmanager
    async def reconciling(self, kind: str, obj: Obj) -> AsyncIterator[None]:
        """One reconcile of ``obj``: under its lock, timed, counted as ok or error."""
        meta = obj["metadata"]
        async with self.lock(kind, meta["namespace"], meta["name"]):
            with self.metrics.duration.labels(kind).time():
                try:
                    yield
                except Exception:
                    self.metrics.reconciles.labels(kind, "error").inc()
                    raise
                self.metrics.reconciles.labels(kind, "ok").inc()

    def forget(self, kind: str, ns: str, name: str) -> None:
        self._locks.pop((kind, ns, name), None)
        if kind == "pool":
            self.generations.pop((ns, name), None)
