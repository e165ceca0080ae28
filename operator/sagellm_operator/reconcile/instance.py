"""ExecutionInstance reconcile: ensure its Pod (or LeaderWorkerSet), report its status.

Surge of one within an instance: when the spec hash changes, the new pod starts next to the
old one; the old pod keeps serving (and stays the instance URL) until the new one is Ready.
``status.observedGeneration`` reaches ``metadata.generation`` only once the current pod serves.

A pod with a deletionTimestamp (``kubectl delete pod``, node drain, eviction) no longer serves:
when no other pod of the instance serves, the instance reports phase ``Draining`` with the
terminating pod's URL and ``ready: false`` at once, so the pool lists the endpoint as draining
and routers stop choosing it while the pod's preStop hook lets in-flight requests finish.
"""

from __future__ import annotations

from typing import Any

from sagellm_core.api import ExecutionInstanceSpec
from sagellm_core.api import labels as L
from sagellm_core.conditions import condition
from sagellm_operator.builders.lws import LWS_GROUP, LWS_PLURAL, LWS_VERSION, build_lws, needs_lws
from sagellm_operator.builders.pod import build_pod, pod_name
from sagellm_operator.reconcile.context import Context, iso
from sagellm_operator.reconcile.diagnose import PodView, view_pod
from sagellm_operator.reconcile.kopftools import owned

Obj = dict[str, Any]
WORKER_INDEX = "leaderworkerset.sigs.k8s.io/worker-index"


async def reconcile_instance(ctx: Context, inst: Obj) -> None:
    if inst["metadata"].get("deletionTimestamp"):
        return
    async with ctx.reconciling("instance", inst):
        await _reconcile(ctx, inst)


async def _reconcile(ctx: Context, inst: Obj) -> None:
    spec = ExecutionInstanceSpec.model_validate(inst["spec"])
    if needs_lws(spec):
        if not await ctx.kube.lws_installed():
            msg = (
                f"instance needs {spec.nodes} nodes, which takes a LeaderWorkerSet, but the "
                "LeaderWorkerSet CRD (leaderworkerset.x-k8s.io) is not installed: install LWS"
            )
            await _write(ctx, inst, _status(inst, "Failed", None, [], msg, L.REASON_LWS_MISSING))
            return
        await _ensure_lws(ctx, inst, spec)
    pods, terminating = await _pods(ctx, inst)
    want = pod_name(inst)
    current = [p for p in pods if p["metadata"]["name"] == want or _is_group_of(p, want)]
    if not current and not needs_lws(spec):
        pod = build_pod(inst, spec, ctx.settings.pods)
        owned(pod, inst)
        if await ctx.kube.create_pod(pod):
            ctx.metrics.decisions.labels("instance", "create-pod").inc()
            ctx.events.post(inst, "Normal", "CreatedPod", f"created pod {want}")
    views = [view_pod(p) for p in current]
    leader = _leader(current, views)
    old = [p for p in pods if p not in current]
    if leader is not None and leader.ready and old:
        await _retire(ctx, inst, old)
        old = []
    serving = leader if leader is not None and leader.ready else _first_ready(old)
    ending = None if serving else next((v for v in map(view_pod, terminating) if v.ip), None)
    await _write(ctx, inst, _report(inst, leader, serving, views, ctx, ending))


def _is_group_of(pod: Obj, lws_name: str) -> bool:
    labels: dict[str, str] = pod["metadata"].get("labels", {})
    return labels.get("leaderworkerset.sigs.k8s.io/name") == lws_name


async def _pods(ctx: Context, inst: Obj) -> tuple[list[Obj], list[Obj]]:
    """The instance's live pods, and those being deleted."""
    pods = await ctx.lookup.pods_of(inst["metadata"]["namespace"], inst["metadata"]["name"])
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    return live, [p for p in pods if p["metadata"].get("deletionTimestamp")]


async def _ensure_lws(ctx: Context, inst: Obj, spec: ExecutionInstanceSpec) -> None:
    ns, name = inst["metadata"]["namespace"], pod_name(inst)
    group = (LWS_GROUP, LWS_VERSION)
    selector = f"{L.LABEL_INSTANCE}={inst['metadata']['name']}"
    existing = await ctx.kube.list_objects(LWS_PLURAL, ns, selector, group)
    if any(o["metadata"]["name"] == name for o in existing):
        return
    lws = build_lws(inst, spec, ctx.settings.pods)
    owned(lws, inst)
    if await ctx.kube.create(LWS_PLURAL, lws, group):
        msg = f"created LeaderWorkerSet {name} with {spec.nodes} pods"
        ctx.events.post(inst, "Normal", "CreatedLeaderWorkerSet", msg)


def _leader(pods: list[Obj], views: list[PodView]) -> PodView | None:
    for pod, view in zip(pods, views, strict=True):
        if pod["metadata"].get("labels", {}).get(WORKER_INDEX, "0") == "0":
            return view
    return None


def _first_ready(pods: list[Obj]) -> PodView | None:
    return next((v for v in map(view_pod, pods) if v.ready), None)


async def _retire(ctx: Context, inst: Obj, old: list[Obj]) -> None:
    for pod in old:
        if pod["metadata"].get("labels", {}).get(WORKER_INDEX) is not None:
            lws = pod["metadata"]["labels"].get("leaderworkerset.sigs.k8s.io/name", "")
            await ctx.kube.delete(
                LWS_PLURAL, pod["metadata"]["namespace"], lws, (LWS_GROUP, LWS_VERSION)
            )
        else:
            await ctx.kube.delete_pod(pod["metadata"]["namespace"], pod["metadata"]["name"])
        ctx.metrics.decisions.labels("instance", "replace-pod").inc()
        old_name = pod["metadata"]["name"]
        ctx.events.post(inst, "Normal", "ReplacedPod", f"{old_name} replaced by {pod_name(inst)}")


def _report(
    inst: Obj, leader: PodView | None, serving: PodView | None, views: list[PodView], ctx: Context,
    ending: PodView | None = None,
) -> Obj:  # fmt: skip
    draining = inst["metadata"].get("annotations", {}).get(L.ANNOTATION_DRAINING) == "true"
    failed = next((v for v in views if v.phase == "Failed"), None)
    shown = serving or ending
    url = f"http://{shown.ip}:{ctx.settings.pods.port}" if shown and shown.ip else None
    names = [v.name for v in views]
    if draining:
        phase, msg = "Draining", "draining: no new requests, waiting for in-flight ones"
    elif ending is not None:
        phase = "Draining"
        msg = f"pod {ending.name} is terminating; its preStop hook lets in-flight requests finish"
    elif failed is not None:
        phase, msg = "Failed", failed.message
    elif leader is not None and leader.ready:
        phase, msg = "Ready", ""
    elif serving is not None:
        phase, msg = "Ready", "rolling to a new pod; the previous one serves meanwhile"
    else:
        phase = leader.phase if leader else "Pending"
        msg = leader.message if leader else "creating the pod"
    status = _status(inst, phase, url, names, msg, None)
    status["ready"] = serving is not None and not draining
    status["restarts"] = sum(v.restarts for v in views)
    if leader is not None and leader.ready:
        status["observedGeneration"] = inst["metadata"].get("generation")
    return status


def _status(
    inst: Obj, phase: str, url: str | None, pods: list[str], msg: str, reason: str | None
) -> Obj:
    old = inst.get("status") or {}
    ready = phase == "Ready"
    gen = inst["metadata"].get("generation")
    # now=None: ``_write`` stamps a new transition with the time it writes.
    cond = condition(old.get("conditions") or [], L.CONDITION_READY, ready, reason or phase, msg,
                     now=None, generation=gen)  # fmt: skip
    return {"phase": phase, "url": url, "podNames": pods, "ready": ready, "message": msg,
            "restarts": old.get("restarts", 0), "conditions": [cond],
            "observedGeneration": old.get("observedGeneration")}  # fmt: skip


async def _write(ctx: Context, inst: Obj, status: Obj) -> None:
    for cond in status["conditions"]:
        cond["lastTransitionTime"] = cond["lastTransitionTime"] or iso(ctx.clock())
    status = {k: v for k, v in status.items() if v is not None}
    old = inst.get("status") or {}
    if all(old.get(k) == v for k, v in status.items()):
        return
    meta = inst["metadata"]
    if old.get("phase") != status["phase"] and status["phase"] == "Failed":
        ctx.events.post(inst, "Warning", "InstanceFailed", status["message"])
    patch = {"status": {**{k: None for k in old if k not in status}, **status}}
    await ctx.kube.patch(L.INSTANCE_PLURAL, meta["namespace"], meta["name"], patch, status=True)
