"""Pod → what a user needs to know: phase, readiness, URL, restarts, and a plain message.

Input: a Pod as the API returns it. Output: :class:`PodView`. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

_WAITING = {
    "CrashLoopBackOff": "the engine keeps crashing and Kubernetes is backing off restarts",
    "ImagePullBackOff": "the image cannot be pulled; check the image name, tag and pull secret",
    "ErrImagePull": "the image cannot be pulled; check the image name, tag and pull secret",
    "CreateContainerConfigError": "the container config is invalid (often a missing Secret key)",
}
_TERMINATED = {
    "OOMKilled": "the engine ran out of memory and was killed; raise the memory limit or lower "
    "maxModelLen / gpuMemoryUtilization",
    "Error": "the engine exited with an error; see the pod logs",
}


@dataclass(frozen=True)
class PodView:
    name: str
    phase: str  # Pending | Starting | Ready | Failed
    ready: bool
    ip: str | None
    restarts: int
    message: str


def _condition(pod: Obj, kind: str) -> Obj:
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


def _problem(statuses: list[Obj]) -> str | None:
    for cs in statuses:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        last = ((cs.get("lastState") or {}).get("terminated") or {}).get("reason")
        reason = waiting.get("reason")
        if reason in _WAITING:
            text = f"{reason}: {_WAITING[reason]}"
            if last in _TERMINATED:
                text += f" (last exit: {last}: {_TERMINATED[last]})"
            return text
    return None


def view_pod(pod: Obj) -> PodView:
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    restarts = sum(int(cs.get("restartCount", 0)) for cs in statuses)
    ready = _condition(pod, "Ready").get("status") == "True"
    ip = status.get("podIP")
    name = pod["metadata"]["name"]
    problem = _problem(statuses)
    if problem:
        return PodView(name, "Failed", False, ip, restarts, problem)
    if status.get("phase") == "Failed":
        return PodView(name, "Failed", False, ip, restarts, status.get("message") or "pod failed")
    if ready:
        return PodView(name, "Ready", True, ip, restarts, "")
    scheduled = _condition(pod, "PodScheduled")
    if scheduled.get("status") == "False":
        why = scheduled.get("message") or "no node fits (often: not enough free GPUs)"
        return PodView(name, "Pending", False, ip, restarts, f"unschedulable: {why}")
    if ip:
        return PodView(name, "Starting", False, ip, restarts, "loading the model")
    return PodView(name, "Pending", False, ip, restarts, "waiting for the pod to start")
