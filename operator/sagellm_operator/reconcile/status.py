"""Pure pool status: phase, conditions, per-role counts, plan, and what the router reads.

Inputs: the pool object and its typed spec, desired replicas per role, role plans (status
dicts), the existing instances, whether a rollout/scale is in progress, and the time. Output:
the ``status`` dict. The router reads only ``status`` (``endpoints``, ``model``, ``task``,
``scheduling``), never the spec: this module is the whole operator-to-router contract.
"""

from __future__ import annotations

from typing import Any

from sagellm_core.api import labels as L
from sagellm_core.api.common import Role
from sagellm_core.api.pool import InferencePoolSpec
from sagellm_core.conditions import condition
from sagellm_core.scheduling.capacity import concurrency_limit

Obj = dict[str, Any]


def _condition(old: list[Obj], kind: str, ok: bool, reason: str, msg: str, now: str,
               gen: int | None) -> Obj:  # fmt: skip
    return condition(old, kind, ok, reason, msg, now=now, generation=gen)


def endpoints(instances: list[Obj], spec: InferencePoolSpec) -> list[Obj]:
    slots = {str(role): concurrency_limit(spec, role) for role in Role}
    out = []
    for inst in sorted(instances, key=lambda i: i["metadata"]["name"]):
        status = inst.get("status") or {}
        if not status.get("url"):
            continue
        # Marked by the operator's drain, or its pod is terminating (deleted by Kubernetes).
        notes = inst["metadata"].get("annotations") or {}
        draining = notes.get(L.ANNOTATION_DRAINING) == "true" or status.get("phase") == "Draining"
        out.append({"instance": inst["metadata"]["name"], "role": inst["spec"]["role"],
                    "url": status["url"], "ready": bool(status.get("ready")) and not draining,
                    "draining": draining,
                    "maxConcurrency": slots[inst["spec"]["role"]]})  # fmt: skip
    return out


def serving(pool: Obj, with_scheduling: bool = True) -> Obj:
    """The pool-level part of the router's contract, copied from the spec as stored.

    ``scheduling`` is null (deleted by the merge patch) when the spec has none, so the router's
    own default strategy applies, as it would reading the spec."""
    spec = pool.get("spec") or {}
    model = spec.get("model") or {}
    scheduling = spec.get("scheduling") if with_scheduling else None
    return {"model": model.get("name"), "task": model.get("task", "generate"),
            "scheduling": scheduling if isinstance(scheduling, dict) else None}  # fmt: skip


def scale_from_zero(spec: InferencePoolSpec) -> bool:
    """Whether the autoscaler may hold a role at zero (the router then holds its requests)."""
    return spec.autoscaling is not None and spec.autoscaling.scales_from_zero()


def pool_status(pool: Obj, spec: InferencePoolSpec, desired: dict[str, int], plans: list[Obj],
                instances: list[Obj], busy: bool, now: str) -> Obj:  # fmt: skip
    gen = pool["metadata"].get("generation")
    old = (pool.get("status") or {}).get("conditions") or []
    eps = endpoints(instances, spec)
    roles: list[Obj] = []
    for role, want in desired.items():
        ready = sum(1 for e in eps if e["role"] == role and e["ready"])
        roles.append({"role": role, "desired": want, "ready": min(ready, want)})
    failed = [i for i in instances if (i.get("status") or {}).get("phase") == "Failed"]
    all_ready = all(r["ready"] >= r["desired"] for r in roles)
    fail_msg = "; ".join(
        f"{i['metadata']['name']}: {i['status'].get('message', '')}" for i in failed
    )
    waiting = ", ".join(f"{r['role']} {r['ready']}/{r['desired']}" for r in roles)
    conditions = [
        _condition(old, L.CONDITION_READY, all_ready,
                   L.REASON_ALL_READY if all_ready else L.REASON_WAITING_FOR_PODS,
                   f"ready: {waiting}", now, gen),
        _condition(old, L.CONDITION_PROGRESSING, busy or not all_ready,
                   L.REASON_SCALING if busy or not all_ready else L.REASON_RECONCILED,
                   "instances are being created, updated or drained" if busy else "", now, gen),
        _condition(old, L.CONDITION_DEGRADED, bool(failed),
                   L.REASON_INSTANCE_FAILED if failed else L.REASON_RECONCILED, fail_msg, now, gen),
    ]  # fmt: skip
    phase = "Degraded" if failed else "Ready" if all_ready and not busy else "Progressing"
    return {
        "phase": phase, "observedGeneration": gen, "conditions": conditions, "plan": plans,
        "roles": roles, "readyReplicas": sum(r["ready"] for r in roles),
        "desiredReplicas": sum(desired.values()), "endpoints": eps, **serving(pool),
        "scaleFromZero": scale_from_zero(spec),
    }  # fmt: skip


def invalid_status(pool: Obj, reason: str, problems: list[str], now: str) -> Obj:
    gen = pool["metadata"].get("generation")
    old = (pool.get("status") or {}).get("conditions") or []
    msg = "; ".join(problems)
    return {
        "phase": "Failed", "observedGeneration": gen, "endpoints": [], "plan": [], "roles": [],
        "readyReplicas": 0, "desiredReplicas": 0, **serving(pool, with_scheduling=False),
        "conditions": [
            _condition(old, L.CONDITION_READY, False, reason, msg, now, gen),
            _condition(old, L.CONDITION_PROGRESSING, False, reason, msg, now, gen),
            _condition(old, L.CONDITION_DEGRADED, True, reason, msg, now, gen),
        ],
    }  # fmt: skip


def scale_status(pool: Obj, roles: list[Obj]) -> Obj:
    """What ``/scale`` reports: the general role's ready replicas and its pods' selector."""
    ready = next((r["ready"] for r in roles if r["role"] == "General"), 0)
    name = pool["metadata"]["name"]
    selector = f"{L.LABEL_POOL}={name},{L.LABEL_ROLE}={L.role_label_value('General')}"
    return {"replicas": ready, "selector": selector}
