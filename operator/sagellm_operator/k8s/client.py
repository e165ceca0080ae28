"""Thin async API wrapper: create/patch/delete tolerant to 404/409, explicit merge-patches.

Every call names what it touches; nothing here decides anything.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from sagellm_core.api import labels as L
from sagellm_operator.settings import OperatorSettings

Obj = dict[str, Any]
MERGE = "application/merge-patch+json"
LWS = ("leaderworkerset.x-k8s.io", "v1", "leaderworkersets")
log = logging.getLogger(__name__)


async def connect(settings: OperatorSettings) -> Kube:
    """An API client for ``settings.api_server`` if given, else in-cluster or the kubeconfig."""
    if settings.api_server:
        cfg = client.Configuration(host=settings.api_server.rstrip("/"))
        cfg.verify_ssl = not settings.insecure_skip_tls_verify
    else:
        cfg = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        except config.ConfigException:
            await config.load_kube_config(client_configuration=cfg)
    return Kube(client.ApiClient(cfg))


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        # Typed as Any: the generated stubs lack the runtime's ``_content_type`` and
        # ``_preload_content`` options, and we pass plain dict manifests.
        self.core: Any = client.CoreV1Api(api)
        self.custom: Any = client.CustomObjectsApi(api)
        self.networking: Any = client.NetworkingV1Api(api)
        self.extensions: Any = client.ApiextensionsV1Api(api)

    async def close(self) -> None:
        await self.api.close()

    # -- custom objects -----------------------------------------------------------------------
    async def get(self, plural: str, ns: str, name: str) -> Obj | None:
        call = self.custom.get_namespaced_custom_object(L.GROUP, L.VERSION, ns, plural, name)
        found, obj = await _unless(404, call)
        return obj if found else None

    async def list_objects(
        self, plural: str, ns: str | None, selector: str, group: tuple[str, str] | None = None
    ) -> list[Obj]:
        """Objects in ``ns`` (None: every namespace) matching the label ``selector``."""
        grp, ver = group or (L.GROUP, L.VERSION)
        if ns is None:
            result = await self.custom.list_cluster_custom_object(
                grp, ver, plural, label_selector=selector
            )
        else:
            result = await self.custom.list_namespaced_custom_object(
                grp, ver, ns, plural, label_selector=selector
            )
        items: list[Obj] = result.get("items", [])
        return items

    async def create(self, plural: str, obj: Obj, group: tuple[str, str] | None = None) -> bool:
        """Create ``obj``; False if it already exists."""
        grp, ver = group or (L.GROUP, L.VERSION)
        ns = obj["metadata"]["namespace"]
        created, _ = await _unless(409, self.custom.create_namespaced_custom_object(
            grp, ver, ns, plural, obj))  # fmt: skip
        return created

    async def patch(
        self, plural: str, ns: str, name: str, patch: Obj, status: bool = False
    ) -> None:
        call = (self.custom.patch_namespaced_custom_object_status if status
                else self.custom.patch_namespaced_custom_object)  # fmt: skip
        await _unless(404, call(L.GROUP, L.VERSION, ns, plural, name, patch, _content_type=MERGE))

    async def delete(
        self, plural: str, ns: str, name: str, group: tuple[str, str] | None = None
    ) -> None:
        grp, ver = group or (L.GROUP, L.VERSION)
        await _unless(404, self.custom.delete_namespaced_custom_object(grp, ver, ns, plural, name))

    # -- pods ---------------------------------------------------------------------------------
    async def list_pods(self, ns: str, selector: str) -> list[Obj]:
        result = await self.core.list_namespaced_pod(
            ns, label_selector=selector, _preload_content=False
        )
        items: list[Obj] = (await result.json()).get("items", [])
        return items

    async def create_pod(self, pod: Obj) -> bool:
        """Create ``pod``; False if it already exists."""
        ns = pod["metadata"]["namespace"]
        created, _ = await _unless(409, self.core.create_namespaced_pod(
            ns, pod, _preload_content=False))  # fmt: skip
        return created

    async def delete_pod(self, ns: str, name: str) -> None:
        await _unless(404, self.core.delete_namespaced_pod(name, ns, _preload_content=False))

    # -- network policies ---------------------------------------------------------------------
    async def apply_network_policy(self, policy: Obj) -> None:
        """Create ``policy``, or make an existing one's spec and labels match it."""
        ns, name = policy["metadata"]["namespace"], policy["metadata"]["name"]
        create = self.networking.create_namespaced_network_policy
        created, _ = await _unless(409, create(ns, policy, _preload_content=False))
        if created:
            return
        patch = {"metadata": {"labels": policy["metadata"]["labels"]}, "spec": policy["spec"]}
        await self.networking.patch_namespaced_network_policy(
            name, ns, patch, _content_type=MERGE, _preload_content=False
        )

    # -- LeaderWorkerSet ----------------------------------------------------------------------
    async def lws_installed(self) -> bool:
        served, _ = await _unless(404, self.custom.list_cluster_custom_object(*LWS, limit=1))
        return served

    async def get_crd(self, name: str) -> Obj | None:
        """The installed CustomResourceDefinition ``name`` (None when it is not installed)."""
        read = self.extensions.read_custom_resource_definition
        found, resp = await _unless(404, read(name, _preload_content=False))
        if not found:
            return None
        crd: Obj = json.loads(await resp.read())
        return crd


async def _unless(status: int, call: Awaitable[Any]) -> tuple[bool, Any]:
    """``(True, result)``, or ``(False, None)`` when the API answers ``status`` (404: the object
    is gone, 409: it exists already); any other error is raised."""
    try:
        return True, await call
    except ApiException as exc:
        if exc.status != status:
            raise
        return False, None
