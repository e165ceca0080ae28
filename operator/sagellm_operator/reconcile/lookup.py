"""Where reconciles look objects up: kopf's in-memory indices, or the API.

The operator watches its pools, instances and pods anyway; kopf keeps indices of them (see
``handlers.build_registry``: ``kopf.index``), so a pod event finds its instance, an instance
finds its pods, and the resync and autoscaler passes find every pool and instance without an
API call. :class:`ApiLookup` answers the same questions by listing (for code run without kopf).

One lookup stays a fresh API read on purpose: a pool's instances (``reconcile.pool``). The pool
reconcile patches drain annotations and creates and deletes instances, and its next pass must
see its own writes; an index lags its watch by a moment, and a drain decided on a stale copy
would stamp a second drain start.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sagellm_core.api import labels as L
from sagellm_operator.k8s import Kube
from sagellm_operator.settings import OperatorSettings

Obj = dict[str, Any]
Key = tuple[str, str]


class Lookup(Protocol):
    async def instance(self, ns: str, name: str) -> Obj | None: ...
    async def pods_of(self, ns: str, instance: str) -> list[Obj]: ...
    async def in_scope(self, plural: str) -> list[Obj]: ...


@dataclass(frozen=True)
class ApiLookup:
    """Each question is an API call."""

    kube: Kube
    settings: OperatorSettings

    async def instance(self, ns: str, name: str) -> Obj | None:
        return await self.kube.get(L.INSTANCE_PLURAL, ns, name)

    async def pods_of(self, ns: str, instance: str) -> list[Obj]:
        return await self.kube.list_pods(ns, f"{L.LABEL_INSTANCE}={instance}")

    async def in_scope(self, plural: str) -> list[Obj]:
        namespaces = self.settings.namespaces if not self.settings.all_namespaces else (None,)
        found: list[Obj] = []
        for ns in namespaces:
            found += await self.kube.list_objects(plural, ns, "")
        return found


def _copies(values: Iterable[Any]) -> list[Obj]:
    # Reconciles annotate the objects they read; the index keeps kopf's own copy untouched.
    return [copy.deepcopy(dict(v)) for v in values]


@dataclass(frozen=True)
class IndexLookup:
    """Answers from kopf indices: ``objects`` by plural, keyed ``(namespace, name)``; ``pods``
    keyed ``(namespace, instance)``."""

    objects: Mapping[str, Mapping[Key, Iterable[Any]]]
    pods: Mapping[Key, Iterable[Any]]

    async def instance(self, ns: str, name: str) -> Obj | None:
        found = _copies(self.objects[L.INSTANCE_PLURAL].get((ns, name), ()))
        return found[0] if found else None

    async def pods_of(self, ns: str, instance: str) -> list[Obj]:
        return _copies(self.pods.get((ns, instance), ()))

    async def in_scope(self, plural: str) -> list[Obj]:
        return _copies(v for store in self.objects[plural].values() for v in store)
