"""The emulated Kubernetes API server: kmock's scaffold (HTTP server, request parsing,
discovery, Status errors, request log) serving the stateful :class:`~.store.Store`.

kmock's own ``KubernetesEmulator`` keeps objects as plain dicts with shallow merges; this
subclass of ``kmock.KubernetesScaffold`` replaces its object handling with the store's API-server
semantics while keeping kmock's DSL, so tests can still inject faults with
``emu['patch', kmock.resource('v1/pods')] << 500`` (user reactions take priority over fallbacks).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import attrs
import kmock
from kmock import KubernetesError, KubernetesScaffold
from typing_extensions import override

from .resources import VERBS, ResourceType
from .selectors import Selector, SelectorError
from .store import Obj, Store, WatchEvent, api_error

EMPTY_SELECTOR = Selector()


@attrs.define(kw_only=True)
class KubeEmulator(KubernetesScaffold):
    """A kmock handler that behaves like a small, single-version Kubernetes API server."""

    store: Store = attrs.field(factory=Store)
    gc_delay: float = 0.0  # background GC: dependents go after the owner, not with it
    request_log: int = 1
    """How many recent requests kmock keeps for assertions. kmock matches each request by
    re-filtering its whole log once per reaction (``request in view``), so the cost of every
    request grows with this number: 200 made the emulator, not the operator, the bottleneck of
    the scale benchmark (157 of 187 s in kmock's filters). Raise it only to assert on history."""
    _gc_tasks: set[asyncio.Task[None]] = attrs.field(factory=set, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.fallback[kmock.action.LIST] << self._serve_list
        self.fallback[kmock.action.WATCH] << self._serve_watch
        self.fallback[kmock.action.FETCH] << self._serve_fetch
        self.fallback[kmock.action.CREATE] << self._serve_create
        self.fallback[kmock.action.UPDATE] << self._serve_patch
        self.fallback[kmock.action.DELETE] << self._serve_delete
        self.fallback["put"] << self._serve_replace

    @override
    async def _handle(self, request: kmock.Request) -> Any:
        if len(self._requests) > self.request_log:
            del self._requests[: -self.request_log]
        return await super()._handle(request)

    # -- discovery ----------------------------------------------------------------------------
    @override
    def _get_resources(self) -> list[kmock.resource]:
        result = []
        for rt in self.store.types.values():
            res = kmock.resource(rt.group, rt.version, rt.plural)
            self._resources[res] = kmock.ResourceInfo(
                namespaced=rt.namespaced,
                kind=rt.kind,
                singular=rt.kind.lower(),
                verbs=set(VERBS),
                shortnames=set(rt.short_names),
                subresources={"status"} if rt.status_subresource else set(),
            )
            result.append(res)
        return result

    # -- helpers ------------------------------------------------------------------------------
    def _type(self, request: kmock.Request) -> ResourceType:
        res = request.resource
        if res is None or res.plural is None:
            raise api_error(404, "NotFound", "not a resource URL")
        return self.store.resource(res.group or "", res.plural)

    @staticmethod
    def _selector(request: kmock.Request) -> Selector:
        try:
            return Selector.parse(
                request.params.get("labelSelector"), request.params.get("fieldSelector")
            )
        except SelectorError as exc:
            raise api_error(400, "BadRequest", str(exc)) from exc

    @staticmethod
    def _data(request: kmock.Request) -> Any:
        if request.data is None:
            raise api_error(400, "BadRequest", "the request body must be JSON")
        return request.data

    def _schedule_gc(self) -> None:
        task = asyncio.create_task(self._gc())
        self._gc_tasks.add(task)
        task.add_done_callback(self._gc_tasks.discard)

    async def _gc(self) -> None:
        await asyncio.sleep(self.gc_delay)
        for _ in range(64):  # each pass removes one level of the ownership tree
            if not self.store.collect_garbage():
                return
            await asyncio.sleep(0)

    # -- verbs --------------------------------------------------------------------------------
    async def _serve_list(self, request: kmock.Request) -> Obj:
        rt = self._type(request)
        items, rv = self.store.list(rt, request.namespace, self._selector(request))
        return {
            "apiVersion": rt.api_version,
            "kind": f"{rt.kind}List",
            "metadata": {"resourceVersion": str(rv), "continue": ""},
            "items": items,
        }

    async def _serve_fetch(self, request: kmock.Request) -> Obj:
        assert request.name is not None
        return self.store.get(self._type(request), request.namespace, request.name)

    async def _serve_create(self, request: kmock.Request) -> kmock.Response:
        obj = self.store.create(self._type(request), request.namespace, self._data(request))
        if obj["metadata"].get("ownerReferences"):
            self._schedule_gc()  # like the real GC: a dependent of a gone owner is collected
        return kmock.Response(status=201, payload=obj)

    def _gc_if_removed(self, before: int) -> None:
        if self.store.removals != before:  # e.g. the last finalizer was removed by a patch
            self._schedule_gc()

    async def _serve_patch(self, request: kmock.Request) -> Obj:
        assert request.name is not None
        ctype = request.headers.get("Content-Type", "")
        before = self.store.removals
        obj = self.store.patch(
            self._type(request),
            request.namespace,
            request.name,
            ctype,
            self._data(request),
            request.subresource,
        )
        self._gc_if_removed(before)
        return obj

    async def _serve_replace(self, request: kmock.Request) -> Obj:
        if request.name is None:
            raise api_error(405, "MethodNotAllowed", "PUT needs an object URL")
        rt = self._type(request)
        data = self._data(request)
        before = self.store.removals
        obj = self.store.replace(rt, request.namespace, request.name, data, request.subresource)
        self._gc_if_removed(before)
        return obj

    async def _serve_delete(self, request: kmock.Request) -> Obj:
        assert request.name is not None
        body = request.data if isinstance(request.data, dict) else {}
        policy = request.params.get("propagationPolicy") or body.get("propagationPolicy")
        grace = request.params.get("gracePeriodSeconds", body.get("gracePeriodSeconds"))
        obj = self.store.delete(
            self._type(request), request.namespace, request.name, policy,
            None if grace is None else int(grace),
        )  # fmt: skip
        self._schedule_gc()
        return obj

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:
        rt = self._type(request)
        selector = self._selector(request)
        timeout = float(request.params.get("timeoutSeconds") or 0) or None
        deadline = time.monotonic() + timeout if timeout else None
        queue = self.store.subscribe(rt)
        try:
            yield b""  # send the headers now, even if nothing happens for a while
            async for event in self._watch_events(request, rt, selector, queue, deadline):
                yield event
        finally:
            self.store.unsubscribe(rt, queue)

    async def _watch_events(
        self,
        request: kmock.Request,
        rt: ResourceType,
        selector: Selector,
        queue: asyncio.Queue[WatchEvent],
        deadline: float | None,
    ) -> AsyncIterator[Obj]:
        since_text = request.params.get("resourceVersion") or "0"
        initial = request.params.get("sendInitialEvents") == "true"
        if since_text == "0" or initial:
            items, since = self.store.list(rt, request.namespace, selector)
            for item in items:
                yield {"type": "ADDED", "object": item}
            if initial:
                yield _initial_events_end(rt, since)
            backlog: list[WatchEvent] = []
        else:
            since = int(since_text)
            try:
                backlog = self.store.events_since(rt, since)
            except KubernetesError as exc:
                yield {"type": "ERROR", "object": _status(exc)}
                return
        for event in backlog:
            since = max(since, event.rv)
            if (out := _filter(event, request.namespace, selector)) is not None:
                yield out
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            try:
                event = await asyncio.wait_for(queue.get(), remaining)
            except TimeoutError:
                return
            if event.rv > since and (out := _filter(event, request.namespace, selector)):
                yield out


def _status(exc: KubernetesError) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "code": exc.status,
        "reason": exc.reason,
        "message": exc.message,
    }


def _initial_events_end(rt: ResourceType, rv: int) -> Obj:
    meta = {"resourceVersion": str(rv), "annotations": {"k8s.io/initial-events-end": "true"}}
    return {
        "type": "BOOKMARK",
        "object": {"apiVersion": rt.api_version, "kind": rt.kind, "metadata": meta},
    }


def _filter(event: WatchEvent, namespace: str | None, selector: Selector) -> Obj | None:
    """Apply the watch's namespace and selector the way the API server does: an object that
    stops matching arrives as DELETED, one that starts matching as ADDED."""
    if namespace is not None and event.obj["metadata"].get("namespace") != namespace:
        return None
    now = selector.matches(event.obj)
    before = event.old is not None and selector.matches(event.old)
    if event.type == "MODIFIED" and now != before:
        return {"type": "ADDED" if now else "DELETED", "object": event.obj}
    if now or (event.type == "DELETED" and before):
        return {"type": event.type, "object": event.obj}
    return None


@contextlib.asynccontextmanager
async def running_emulator(**kwargs: Any) -> AsyncIterator[KubeEmulator]:
    """Start the emulator on 127.0.0.1 with a free port; ``emu.url`` is its base URL."""
    async with KubeEmulator(**kwargs) as emu, kmock.Server(emu):
        yield emu
