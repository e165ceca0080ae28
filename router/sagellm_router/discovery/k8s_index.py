"""Pure event handling for InferencePool list/watch: objects in, pool snapshots out.

``PoolIndex.reset`` takes a LIST result, ``PoolIndex.apply`` one WATCH event. Neither does I/O,
so the watch loop's logic is tested by feeding it events.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from sagellm_core.api.autoscaling import AutoscalingSpec
from sagellm_core.api.pool import InferencePoolSpec, SchedulingSpec
from sagellm_core.scheduling.capacity import concurrency_limit
from sagellm_router.types import Endpoint, PoolSnapshot, Role

log = logging.getLogger(__name__)

GROUP = "sagellm.io"
VERSION = "v1alpha1"
PLURAL = "inferencepools"


class WatchExpired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


class WatchFailed(Exception):
    """The API answered with an error: back off, then list again."""


def _limits(spec: Mapping[str, Any]) -> dict[Role, int]:
    """Admission slots per role from the pool spec (``concurrency_limit``); {} if it won't parse."""
    try:
        parsed = InferencePoolSpec.model_validate(spec)
        return {role: concurrency_limit(parsed, role.value) for role in Role}
    except (ValidationError, ValueError):
        return {}


def _endpoint(raw: object, pool: str, limits: Mapping[Role, int]) -> Endpoint | None:
    if not isinstance(raw, Mapping):
        return None
    url, instance = raw.get("url"), raw.get("instance")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        log.warning("pool %s: skipping endpoint with bad url %r", pool, url)
        return None
    try:
        role = Role(raw.get("role", "General"))
    except ValueError:
        log.warning(
            "pool %s: skipping endpoint %s with unknown role %r", pool, url, raw.get("role")
        )
        return None
    return Endpoint(
        url=url.rstrip("/"),
        instance=instance if isinstance(instance, str) else url,
        role=role,
        ready=raw.get("ready") is True,
        draining=raw.get("draining") is True,
        max_concurrency=limits.get(role),
    )


def _scheduling(raw: object, pool: str) -> SchedulingSpec:
    """``spec.scheduling`` as a typed object; defaults (with a warning) when it does not parse."""
    if not isinstance(raw, Mapping):
        return SchedulingSpec()
    try:
        return SchedulingSpec.model_validate(raw)
    except ValidationError as exc:
        log.warning("pool %s: ignoring invalid spec.scheduling: %s", pool, exc)
        return SchedulingSpec()


def _scale_from_zero(raw: object, pool: str) -> bool:
    """``spec.autoscaling`` lets a role sit at zero replicas (requests for it are then held)."""
    if not isinstance(raw, Mapping):
        return False
    try:
        return AutoscalingSpec.model_validate(raw).scales_from_zero()
    except ValidationError as exc:
        log.warning("pool %s: ignoring invalid spec.autoscaling: %s", pool, exc)
        return False


def pool_from_object(obj: Mapping[str, Any]) -> PoolSnapshot | None:
    """Turn an InferencePool object into a snapshot; None when it has no served model name."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    namespace, name = meta.get("namespace") or "default", meta.get("name")
    model = (spec.get("model") or {}).get("name")
    if not isinstance(name, str) or not isinstance(model, str):
        return None
    key = f"{namespace}/{name}"
    created = meta.get("creationTimestamp")
    scheduling = spec.get("scheduling") or {}
    routing, policy = scheduling.get("routing"), scheduling.get("policy")
    raw_endpoints = status.get("endpoints") or []
    limits = _limits(spec) if raw_endpoints else {}
    endpoints = tuple(
        e for e in (_endpoint(r, key, limits) for r in raw_endpoints) if e is not None
    )
    return PoolSnapshot(
        name=key,
        model=model,
        routing=routing if isinstance(routing, str) else None,
        policy=policy if isinstance(policy, str) else None,
        endpoints=endpoints,
        namespace=namespace,
        scheduling=_scheduling(scheduling, key),
        task="embed" if (spec.get("model") or {}).get("task") == "embed" else "generate",
        created=created if isinstance(created, str) else None,
        scale_from_zero=_scale_from_zero(spec.get("autoscaling"), key),
    )


def _key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"


class PoolIndex:
    """The pools seen through list + watch, with the resourceVersion to resume from.

    ``namespaces`` is an allow-list: pools in other namespaces are ignored (None: keep all).
    """

    def __init__(self, namespaces: Collection[str] | None = None) -> None:
        self._pools: dict[str, PoolSnapshot] = {}
        self.resource_version: str | None = None
        self._allowed = frozenset(namespaces) if namespaces else None

    def _in_scope(self, obj: Mapping[str, Any]) -> bool:
        ns = (obj.get("metadata") or {}).get("namespace") or "default"
        return self._allowed is None or ns in self._allowed

    def snapshot(self) -> tuple[PoolSnapshot, ...]:
        return tuple(self._pools[k] for k in sorted(self._pools))

    def reset(
        self, items: Iterable[Mapping[str, Any]], resource_version: str | None
    ) -> tuple[PoolSnapshot, ...]:
        pools = {}
        for obj in items:
            pool = pool_from_object(obj) if self._in_scope(obj) else None
            if pool is not None:
                pools[pool.name] = pool
        self._pools = pools
        self.resource_version = resource_version
        return self.snapshot()

    def apply(self, event: Mapping[str, Any]) -> tuple[PoolSnapshot, ...] | None:
        """Apply one watch event; returns the new snapshot if the pools changed."""
        kind = event.get("type")
        obj = event.get("raw_object") or event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise WatchExpired(str(obj.get("message", "resource version too old")))
            raise WatchFailed(f"watch error: {obj.get('message', obj)}")
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if isinstance(version, str):
            self.resource_version = version
        if kind == "BOOKMARK":
            return None
        before = dict(self._pools)
        key = _key(obj)
        wanted = kind in ("ADDED", "MODIFIED") and self._in_scope(obj)
        pool = pool_from_object(obj) if wanted else None
        if pool is None:
            self._pools.pop(key, None)
        else:
            self._pools[key] = pool
        return None if self._pools == before else self.snapshot()
