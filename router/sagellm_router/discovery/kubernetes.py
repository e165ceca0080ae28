"""Kubernetes discovery: list then watch InferencePool objects with kubernetes_asyncio.

The loop lists (getting a resourceVersion), then watches from it (a raw JSON-lines watch with
bookmarks); when a watch ends it resumes from the last seen version. 410 Gone re-lists at once;
any other API, network or decoding error waits with exponential backoff and re-lists.
Everything is async: no blocking calls.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from sagellm_core.api.labels import GROUP, VERSION
from sagellm_core.api.labels import POOL_PLURAL as PLURAL
from sagellm_router.config import KubernetesDiscoverySettings
from sagellm_router.discovery.k8s_index import PoolIndex, WatchExpired, WatchFailed
from sagellm_router.types import PoolSnapshot

log = logging.getLogger(__name__)


async def default_api_client(settings: KubernetesDiscoverySettings) -> client.ApiClient:
    """In-cluster config when available, else the kubeconfig file."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        await config.load_kube_config(config_file=settings.kubeconfig)
    return client.ApiClient()


class KubernetesDiscovery:
    """Yields pool snapshots from InferencePool status.endpoints."""

    def __init__(
        self,
        settings: KubernetesDiscoverySettings,
        api_client: Callable[[], Any] | None = None,
    ) -> None:
        self._settings = settings
        self._make_client = api_client or (lambda: default_api_client(settings))
        self.index = PoolIndex(settings.namespaces or None)

    def _list_call(self, api: client.CustomObjectsApi) -> tuple[Any, dict[str, Any]]:
        s = self._settings
        if s.all_namespaces or s.namespaces or not s.namespace:
            return api.list_cluster_custom_object, {"group": GROUP, "version": VERSION}
        return api.list_namespaced_custom_object, {
            "group": GROUP,
            "version": VERSION,
            "namespace": s.namespace,
        }

    async def updates(self) -> AsyncIterator[tuple[PoolSnapshot, ...]]:
        backoff = self._settings.backoff_initial_s
        api_client = await self._make_client()
        try:
            api = client.CustomObjectsApi(api_client)
            while True:
                try:
                    async for snapshot in self._list_and_watch(api):
                        backoff = self._settings.backoff_initial_s
                        yield snapshot
                except WatchExpired:
                    log.info("InferencePool watch expired (410); re-listing")
                except (WatchFailed, ValueError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                    log.warning("InferencePool watch failed (%s); retrying in %.1fs", exc, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self._settings.backoff_max_s)
        finally:
            await api_client.close()

    async def _list_and_watch(
        self, api: client.CustomObjectsApi
    ) -> AsyncIterator[tuple[PoolSnapshot, ...]]:
        call, args = self._list_call(api)
        try:
            listing = await call(plural=PLURAL, **args)
        except ApiException as exc:
            raise WatchFailed(f"list failed: {exc.status} {exc.reason}") from exc
        version = (listing.get("metadata") or {}).get("resourceVersion")
        yield self.index.reset(listing.get("items") or [], version)
        while True:
            async for event in self._watch(call, args):
                changed = self.index.apply(event)
                if changed is not None:
                    yield changed

    async def _watch(self, call: Any, args: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """One watch request from the index's resourceVersion; yields decoded events."""
        timeout = self._settings.watch_timeout_s
        kwargs = dict(args, plural=PLURAL, watch="true", timeout_seconds=timeout)
        kwargs["allow_watch_bookmarks"] = "true"
        if self.index.resource_version:
            kwargs["resource_version"] = self.index.resource_version
        try:
            response = await call(**kwargs, _preload_content=False, _request_timeout=timeout + 30)
        except ApiException as exc:
            if exc.status == 410:
                raise WatchExpired(str(exc.reason)) from exc
            raise WatchFailed(f"watch request failed: {exc.status} {exc.reason}") from exc
        try:
            async for line in response.content:
                if line.strip():
                    yield json.loads(line)
        finally:
            response.release()
