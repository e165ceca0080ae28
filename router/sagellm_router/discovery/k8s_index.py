"""Pure event handling for InferencePool list/watch: objects in, pool snapshots out.

``PoolIndex.reset`` takes a LIST result, ``PoolIndex.apply`` one WATCH event. Neither does I/O,
so the watch loop's logic is tested by feeding it events. A pool is read from its ``status``
only (``model``, ``task``, ``scheduling``, ``endpoints``: what the operator writes for the
router) and its metadata; the spec is the operator's to interpret.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from sagellm_core.api.pool import SchedulingSpec
from sagellm_router.types import Endpoint, PoolSnapshot, Role

log = logging.getLogger(__name__)


class WatchExpired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


class WatchFailed(Exception):
    """The API answered with an error: back off, then list again."""


def _slots(raw: object) -> int | None:
    return raw if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 1 else None


def _endpoint(raw: object, pool: str) -> Endpoint | None:
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
        max_concurrency=_slots(raw.get("maxConcurrency")),
    )


def _scheduling(raw: object, pool: str) -> SchedulingSpec:
    """``status.scheduling`` as a typed object; defaults (with a warning) when it won't parse."""
    if not isinstance(raw, Mapping):
        return SchedulingSpec()
    try:
        return SchedulingSpec.model_validate(raw)
    except ValidationError as exc:
        log.warning("pool %s: ignoring invalid status.scheduling: %s", pool, exc)
        return SchedulingSpec()


def pool_from_object(obj: Mapping[str, Any]) -> PoolSnapshot | None:
    """Turn an InferencePool object into a snapshot; None until its status names a model."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    namespace, name = meta.get("namespace") or "default", meta.get("name")
    model = status.get("model")
    if not isinstance(name, str) or not isinstance(model, str):
        return None
    key = f"{namespace}/{name}"
    created = meta.get("creationTimestamp")
    scheduling = status.get("scheduling")
    scheduling = scheduling if isinstance(scheduling, Mapping) else {}
    routing, policy = scheduling.get("routing"), scheduling.get("policy")
    raw_endpoints = status.get("endpoints") or []
    endpoints = tuple(e for e in (_endpoint(r, key) for r in raw_endpoints) if e is not None)
    return PoolSnapshot(
        name=key,
        model=model,
        routing=routing if isinstance(routing, str) else None,
        policy=policy if isinstance(policy, str) else None,
        endpoints=endpoints,
        namespace=namespace,
        scheduling=_scheduling(scheduling, key),
        task="embed" if status.get("task") == "embed" else "generate",
        created=created if isinstance(created, str) else None,
        scale_from_zero=status.get("scaleFromZero") is True,
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
