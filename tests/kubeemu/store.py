"""In-memory object store with the API server's write semantics.

Implements, per the Kubernetes API conventions:
- uid / resourceVersion (one global counter) / generation / creationTimestamp assignment;
  generation bumps only when something other than metadata and status changes;
- the status subresource: main-resource writes keep the stored status, /status writes change
  only status;
- merge-patch (RFC 7386) and JSON-patch (RFC 6902, ``test`` failures answer 422 as kopf expects);
  strategic-merge-patch is treated as merge-patch (lists are replaced, not merged by key);
- optimistic concurrency: a stale ``metadata.resourceVersion`` in a write answers 409;
- deletionTimestamp + finalizers: an object with finalizers stays until they are removed;
- graceful pod deletion: a pod bound to a node (``spec.nodeName``) gets a deletionTimestamp and
  ``deletionGracePeriodSeconds`` (the request's ``gracePeriodSeconds``, else the pod's
  ``terminationGracePeriodSeconds``, else 30) and stays until its kubelet deletes it with grace
  0; unbound pods and grace 0 go at once;
- owner-reference garbage collection (background propagation; ``Orphan`` strips references);
- CRD admission (prune, default, validate) for custom resources; generateName.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import itertools
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonpatch
from kmock import KubernetesError

from .resources import BUILTINS, ResourceType, from_crd
from .selectors import Selector

Obj = dict[str, Any]
Key = tuple[str, str]  # (group, plural)
_NO_NEW_FINALIZERS = "no new finalizers can be added if the object is being deleted"
_MERGE = "application/merge-patch+json"
_SYSTEM_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds")


def _now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


def api_error(status: int, reason: str, message: str) -> KubernetesError:
    return KubernetesError(status=status, reason=reason, message=message, details={"causes": []})


def _rname(rt: ResourceType) -> str:
    return f"{rt.plural}.{rt.group}" if rt.group else rt.plural


@dataclass(frozen=True)
class WatchEvent:
    rv: int
    key: Key
    type: str  # ADDED | MODIFIED | DELETED
    obj: Obj
    old: Obj | None


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _body(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _grace(rt: ResourceType, obj: Obj, grace: int | None) -> int:
    """Seconds a deleted object may take to stop: only pods bound to a node have any."""
    spec = obj.get("spec") or {}
    if rt.key != ("", "pods") or not spec.get("nodeName"):
        return 0
    if grace is not None:
        return max(grace, 0)
    return int(spec.get("terminationGracePeriodSeconds", 30))


class Store:
    def __init__(self, clock: Callable[[], datetime.datetime] = _now, history: int = 100_000):
        self.clock = clock
        self.rv = 0
        self.types: dict[Key, ResourceType] = {rt.key: rt for rt in BUILTINS}
        self.objects: dict[Key, dict[tuple[str | None, str], Obj]] = {}
        self.history: deque[WatchEvent] = deque(maxlen=history)
        self.watchers: dict[Key, set[asyncio.Queue[WatchEvent]]] = {}
        self._names = itertools.count(1)
        self.removals = 0  # objects removed so far (the server runs GC when this moves)

    # -- resource types -----------------------------------------------------------------------
    def resource(self, group: str, plural: str) -> ResourceType:
        rt = self.types.get((group, plural))
        if rt is None:
            raise api_error(404, "NotFound", f"the server could not find resource {plural}.{group}")
        return rt

    def _bucket(self, rt: ResourceType) -> dict[tuple[str | None, str], Obj]:
        return self.objects.setdefault(rt.key, {})

    # -- reads --------------------------------------------------------------------------------
    def get(self, rt: ResourceType, ns: str | None, name: str) -> Obj:
        obj = self._bucket(rt).get((ns if rt.namespaced else None, name))
        if obj is None:
            raise api_error(404, "NotFound", f'{_rname(rt)} "{name}" not found')
        return copy.deepcopy(obj)

    def list(self, rt: ResourceType, ns: str | None, selector: Selector) -> tuple[list[Obj], int]:
        items = [
            copy.deepcopy(obj)
            for (obj_ns, _), obj in sorted(self._bucket(rt).items(), key=lambda kv: kv[0][1])
            if (ns is None or obj_ns == ns) and selector.matches(obj)
        ]
        return items, self.rv

    def all_objects(self) -> list[tuple[ResourceType, Obj]]:
        return [
            (self.types[key], obj)
            for key, bucket in self.objects.items()
            for obj in bucket.values()
        ]

    # -- watch plumbing -----------------------------------------------------------------------
    def subscribe(self, rt: ResourceType) -> asyncio.Queue[WatchEvent]:
        queue: asyncio.Queue[WatchEvent] = asyncio.Queue()
        self.watchers.setdefault(rt.key, set()).add(queue)
        return queue

    def unsubscribe(self, rt: ResourceType, queue: asyncio.Queue[WatchEvent]) -> None:
        self.watchers.get(rt.key, set()).discard(queue)

    def events_since(self, rt: ResourceType, rv: int) -> list[WatchEvent]:
        """Events after ``rv``; raises 410 Gone when that version has left the history."""
        if self.history and rv < self.history[0].rv - 1 and rv < self.rv:
            raise api_error(410, "Expired", f"too old resource version: {rv} ({self.rv})")
        return [event for event in self.history if event.rv > rv and event.key == rt.key]

    def _emit(self, rt: ResourceType, type_: str, obj: Obj, old: Obj | None) -> None:
        event = WatchEvent(self.rv, rt.key, type_, copy.deepcopy(obj), old)
        self.history.append(event)
        for queue in self.watchers.get(rt.key, ()):
            queue.put_nowait(event)

    def _bump(self, obj: Obj) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)

    # -- writes -------------------------------------------------------------------------------
    def create(self, rt: ResourceType, ns: str | None, body: Obj) -> Obj:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{next(self._names):05x}"
        name = meta.get("name")
        if not name:
            raise api_error(422, "Invalid", "metadata.name: Required value: name or generateName")
        ns = ns or meta.get("namespace") or ("default" if rt.namespaced else None)
        if rt.namespaced:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if (ns if rt.namespaced else None, name) in self._bucket(rt):
            raise api_error(409, "AlreadyExists", f'{_rname(rt)} "{name}" already exists')
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        for key in (*_SYSTEM_META, "resourceVersion", "generation"):
            meta.pop(key, None)
        meta.update(uid=str(uuid.uuid4()), generation=1)
        meta["creationTimestamp"] = self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        self._initial_status(rt, obj)
        self._admit(rt, obj)
        self._bump(obj)
        self._bucket(rt)[(meta.get("namespace"), name)] = obj
        self._emit(rt, "ADDED", obj, None)
        return copy.deepcopy(obj)

    def _initial_status(self, rt: ResourceType, obj: Obj) -> None:
        if rt.key == ("", "pods"):
            obj["status"] = {"phase": "Pending"}
        elif rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self.register_crd(obj)
            conditions = [{"type": t, "status": "True"} for t in ("NamesAccepted", "Established")]
            obj["status"] = {"conditions": conditions, "acceptedNames": obj["spec"]["names"]}
        elif rt.status_subresource:
            obj.pop("status", None)

    def register_crd(self, crd: Obj) -> ResourceType:
        try:
            rt = from_crd(crd)
        except ValueError as exc:
            raise api_error(422, "Invalid", str(exc)) from exc
        self.types[rt.key] = rt
        return rt

    def _admit(self, rt: ResourceType, obj: Obj) -> None:
        if rt.schema is None:
            return
        errors = rt.schema.admit(obj)
        if errors:
            name = obj["metadata"].get("name")
            detail = "; ".join(errors)
            raise api_error(422, "Invalid", f'{rt.kind}.{rt.group} "{name}" is invalid: {detail}')

    def patch(
        self, rt: ResourceType, ns: str | None, name: str, ctype: str, data: Any, sub: str | None
    ) -> Obj:
        current = self.get(rt, ns, name)
        ctype = ctype.split(";")[0].strip()
        if ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            if not isinstance(data, dict):
                raise api_error(400, "BadRequest", "a merge patch must be a JSON object")
            proposed = merge_patch(current, data)
            wanted_rv = (data.get("metadata") or {}).get("resourceVersion")
        elif ctype == "application/json-patch+json":
            try:
                proposed = jsonpatch.apply_patch(current, data)
            except jsonpatch.JsonPatchTestFailed as exc:
                raise api_error(422, "Invalid", f"the test operation failed: {exc}") from exc
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise api_error(422, "Invalid", f"the JSON patch does not apply: {exc}") from exc
            wanted_rv = None
        else:
            raise api_error(415, "UnsupportedMediaType", f"unsupported patch type: {ctype!r}")
        return self._write(rt, current, proposed, sub, wanted_rv)

    def replace(
        self, rt: ResourceType, ns: str | None, name: str, body: Obj, sub: str | None
    ) -> Obj:
        current = self.get(rt, ns, name)
        wanted_rv = (body.get("metadata") or {}).get("resourceVersion")
        return self._write(rt, current, copy.deepcopy(body), sub, wanted_rv)

    def _write(
        self, rt: ResourceType, current: Obj, proposed: Obj, sub: str | None, wanted_rv: Any
    ) -> Obj:
        old_meta = current["metadata"]
        proposed = copy.deepcopy(proposed)  # patches share unchanged subtrees with ``current``
        if wanted_rv is not None and str(wanted_rv) != old_meta["resourceVersion"]:
            raise api_error(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {_rname(rt)} "{old_meta["name"]}": '
                "the object has been modified; please apply your changes to the latest version",
            )
        if sub == "status":
            result = copy.deepcopy(current)
            result.pop("status", None)
            if "status" in proposed:
                result["status"] = proposed["status"]
        else:
            result = proposed
            if rt.status_subresource:
                result.pop("status", None)
                if "status" in current:
                    result["status"] = current["status"]
            meta = result.setdefault("metadata", {})
            for key in (*_SYSTEM_META, "name", "namespace", "generation", "resourceVersion"):
                meta.pop(key, None)
                if key in old_meta:
                    meta[key] = old_meta[key]
            if old_meta.get("deletionTimestamp") and not set(meta.get("finalizers") or []) <= set(
                old_meta.get("finalizers") or []
            ):
                raise api_error(
                    422,
                    "Forbidden",
                    _NO_NEW_FINALIZERS,
                )
        result["apiVersion"], result["kind"] = current["apiVersion"], current["kind"]
        self._admit(rt, result)
        if result == current:
            return current  # a no-op write changes nothing, not even resourceVersion
        if _body(result) != _body(current):
            result["metadata"]["generation"] = old_meta.get("generation", 1) + 1
        self._bump(result)
        key = (old_meta.get("namespace"), old_meta["name"])
        self._bucket(rt)[key] = result
        self._emit(rt, "MODIFIED", result, current)
        if result["metadata"].get("deletionTimestamp") and not result["metadata"].get("finalizers"):
            return self._remove(rt, key)
        return copy.deepcopy(result)

    def delete(
        self, rt: ResourceType, ns: str | None, name: str, propagation: str | None,
        grace: int | None = None,
    ) -> Obj:  # fmt: skip
        current = self.get(rt, ns, name)
        meta = current["metadata"]
        if propagation == "Orphan":
            self._orphan(meta["uid"])
        key = (meta.get("namespace"), meta["name"])
        if meta.get("deletionTimestamp"):
            if grace == 0 and rt.key == ("", "pods") and not meta.get("finalizers"):
                return self._remove(rt, key)  # the kubelet confirms the pod has stopped
            return current
        seconds = _grace(rt, current, grace)
        if meta.get("finalizers") or seconds:
            meta["deletionTimestamp"] = self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
            meta["deletionGracePeriodSeconds"] = seconds
            self._bump(current)
            old = self._bucket(rt)[key]
            self._bucket(rt)[key] = current
            self._emit(rt, "MODIFIED", current, old)
            return copy.deepcopy(current)
        return self._remove(rt, key)

    def _remove(self, rt: ResourceType, key: tuple[str | None, str]) -> Obj:
        obj = self._bucket(rt).pop(key)
        self.removals += 1
        self._bump(obj)
        self._emit(rt, "DELETED", obj, None)
        if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            served = from_crd(obj)
            self.types.pop(served.key, None)
            self.objects.pop(served.key, None)
        return copy.deepcopy(obj)

    # -- garbage collection -------------------------------------------------------------------
    def _orphan(self, owner_uid: str) -> None:
        for rt, obj in self.all_objects():
            refs = obj["metadata"].get("ownerReferences") or []
            if any(ref.get("uid") == owner_uid for ref in refs):
                kept = [ref for ref in refs if ref.get("uid") != owner_uid]
                patch = {"metadata": {"ownerReferences": kept or None}}
                self.patch(
                    rt,
                    obj["metadata"].get("namespace"),
                    obj["metadata"]["name"],
                    "application/merge-patch+json",
                    patch,
                    None,
                )

    def collect_garbage(self) -> int:
        """One GC pass: delete dependents whose owners are all gone; return how many."""
        uids = {obj["metadata"]["uid"] for _, obj in self.all_objects()}
        deleted = 0
        for rt, obj in self.all_objects():
            meta = obj["metadata"]
            refs = meta.get("ownerReferences") or []
            if not refs or meta.get("deletionTimestamp"):
                continue
            alive = [ref for ref in refs if ref.get("uid") in uids]
            if not alive:
                self.delete(rt, meta.get("namespace"), meta["name"], None)
                deleted += 1
            elif len(alive) < len(refs):
                patch = {"metadata": {"ownerReferences": alive}}
                self.patch(
                    rt,
                    meta.get("namespace"),
                    meta["name"],
                    "application/merge-patch+json",
                    patch,
                    None,
                )
        return deleted
