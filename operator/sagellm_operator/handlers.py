"""Thin kopf handlers: decode the event, call one reconcile, never return status.

``build_registry(settings)`` returns an isolated ``kopf.OperatorRegistry`` so several operators
(e.g. in tests) can run in one process. The reconcile context lives in kopf's ``memo``. kopf
indexes pools and instances by ``(namespace, name)`` and the operator's pods by
``(namespace, instance)`` (``reconcile.lookup``); every object handler binds kopf's event poster
for the operator-wide loops (``reconcile.kopftools``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from sagellm_core.api import labels as L
from sagellm_core.crdgen import instance_crd, pool_crd
from sagellm_core.crdversion import installed_crd_problems
from sagellm_operator.k8s import Kube, connect
from sagellm_operator.metrics import Metrics
from sagellm_operator.reconcile.accepted import remember
from sagellm_operator.reconcile.autoscaler import autoscale_forever
from sagellm_operator.reconcile.context import Context
from sagellm_operator.reconcile.instance import reconcile_instance
from sagellm_operator.reconcile.lookup import IndexLookup
from sagellm_operator.reconcile.pool import reconcile_pool, reconcile_pool_named
from sagellm_operator.reconcile.resync import resync_forever
from sagellm_operator.settings import OperatorSettings

POOLS = (L.GROUP, L.VERSION, L.POOL_PLURAL)
INSTANCES = (L.GROUP, L.VERSION, L.INSTANCE_PLURAL)
PREFIX = f"operator.{L.GROUP}"


def configure(kopf_settings: kopf.OperatorSettings, settings: OperatorSettings) -> None:
    """kopf's own behaviour: our annotation prefix, warnings-only kopf events, peering, and
    server-side label selection of the pods it watches."""
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=PREFIX)
    kopf_settings.persistence.finalizer = f"{PREFIX}/finalizer"
    kopf_settings.posting.level = logging.WARNING
    kopf_settings.posting.reporting_component = L.MANAGED_BY_VALUE
    kopf_settings.scanning.disabled = True
    kopf_settings.watching.server_timeout = 300
    kopf_settings.peering.standalone = settings.standalone
    # Only the operator's own pods are sent by the API server: not every pod in the namespace.
    managed = f"{L.LABEL_MANAGED_BY}={L.MANAGED_BY_VALUE}"
    kopf_settings.watching.label_selectors["", "v1", "pods"] = managed


def connection_info(settings: OperatorSettings) -> kopf.ConnectionInfo | None:
    """kopf's connection to an ``--api-server`` override (None: in-cluster or kubeconfig).
    TLS is verified unless ``--insecure-skip-tls-verify`` says otherwise."""
    if not settings.api_server:
        return None
    server = settings.api_server.rstrip("/")
    return kopf.ConnectionInfo(server=server, insecure=settings.insecure_skip_tls_verify)


async def check_crds(kube: Kube) -> None:
    """Refuse to start against CRDs of another release: the API server enforces their schema and
    CEL rules, so the operator must know it enforces the ones this build expects."""
    problems = []
    for expected in (pool_crd(), instance_crd()):
        installed = await kube.get_crd(expected["metadata"]["name"])
        problems += installed_crd_problems(installed, expected)
    if problems:
        raise kopf.PermanentError("; ".join(problems))


def _pool_of(ctx: Context, obj: Any) -> None:
    """Schedule a (coalesced) reconcile of the pool that owns ``obj``."""
    name = (obj.get("metadata", {}).get("labels") or {}).get(L.LABEL_POOL)
    if name:
        _trigger(ctx, obj["metadata"]["namespace"], name)


def _trigger(ctx: Context, ns: str, name: str) -> None:
    ctx.children.trigger(("pool", ns, name), lambda: reconcile_pool_named(ctx, ns, name))


async def _instance_of(ctx: Context, pod: Any) -> None:
    name = (pod.get("metadata", {}).get("labels") or {}).get(L.LABEL_INSTANCE)
    if name:
        inst = await ctx.lookup.instance(pod["metadata"]["namespace"], name)
        if inst is not None:
            await reconcile_instance(ctx, inst)


def _by_name(*, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> object:
    return {(namespace, name): body}


def _by_instance(
    *, namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
) -> object:
    instance = labels.get(L.LABEL_INSTANCE)
    return {(namespace, instance): body} if instance else None


def build_registry(settings: OperatorSettings, metrics: Metrics) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    managed = {L.LABEL_MANAGED_BY: L.MANAGED_BY_VALUE}
    kopf.index(*POOLS, id="pools", registry=registry)(_by_name)
    kopf.index(*INSTANCES, id="instances", registry=registry)(_by_name)
    kopf.index("", "v1", "pods", labels=managed, id="pods", registry=registry)(_by_instance)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return connection_info(settings) or (
            kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
        )

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kw: Any) -> None:
        configure(settings, _settings)
        found = IndexLookup({L.POOL_PLURAL: kw["pools"], L.INSTANCE_PLURAL: kw["instances"]},
                            kw["pods"])  # fmt: skip
        memo.ctx = Context(await connect(_settings), _settings, metrics, indices=found)
        await check_crds(memo.ctx.kube)
        memo.resync = asyncio.create_task(resync_forever(memo.ctx))
        memo.autoscale = asyncio.create_task(autoscale_forever(memo.ctx))

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        memo.resync.cancel()
        memo.autoscale.cancel()
        await asyncio.gather(memo.resync, memo.autoscale, return_exceptions=True)
        await memo.ctx.kube.close()

    @kopf.on.create(*POOLS, registry=registry)
    @kopf.on.resume(*POOLS, registry=registry)
    @kopf.on.update(*POOLS, field="spec", registry=registry)
    async def pool_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        memo.ctx.events.bind()
        await reconcile_pool(memo.ctx, dict(body))

    @kopf.on.event(*POOLS, registry=registry)
    async def pool_event(body: kopf.Body, memo: kopf.Memo, type: str | None, **_: Any) -> None:
        # A claim that appears, changes or goes can change who owns a model name: re-run the
        # other claimants now rather than at the next resync.
        memo.ctx.events.bind()
        for key in remember(memo.ctx, dict(body), deleted=type == "DELETED"):
            _trigger(memo.ctx, *key.split("/", 1))

    @kopf.on.event(*INSTANCES, registry=registry)
    async def instance_event(body: kopf.Body, memo: kopf.Memo, type: str | None, **_: Any) -> None:
        memo.ctx.events.bind()
        if type != "DELETED":
            await reconcile_instance(memo.ctx, dict(body))
        _pool_of(memo.ctx, dict(body))

    @kopf.on.event("", "v1", "pods", labels=managed, registry=registry)
    async def pod_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        await _instance_of(memo.ctx, dict(body))

    _settings = settings
    return registry
