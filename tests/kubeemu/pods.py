"""What the fake kubelet makes of a pod: its status, the simulator command line, its ending.

Pure functions of the pod object (no API, no processes): :mod:`tests.kubeemu.kubelet` applies them.
"""

from __future__ import annotations

import datetime
import re
import socket
import sys
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


def address_free(ip: str, port: int) -> bool:
    """Nothing listens on ``ip:port`` yet."""
    with socket.socket() as sock:
        try:
            sock.bind((ip, port))
        except OSError:
            return False
        return True


@dataclass(frozen=True)
class PodBehaviour:
    """What the fake container does. Default: start and become ready."""

    ready: bool = True
    waiting_reason: str | None = None  # e.g. CrashLoopBackOff, ImagePullBackOff
    message: str = ""
    last_terminated_reason: str | None = None  # e.g. OOMKilled, Error
    restarts: int = 0


def _ts() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod_status(pod: Obj, ip: str, behaviour: PodBehaviour) -> Obj:
    """The status a kubelet would report for ``pod`` behaving as described."""
    ready = behaviour.ready and behaviour.waiting_reason is None
    containers = []
    for container in pod.get("spec", {}).get("containers", []):
        state: Obj = {"running": {"startedAt": _ts()}}
        if behaviour.waiting_reason:
            state = {"waiting": {"reason": behaviour.waiting_reason, "message": behaviour.message}}
        status: Obj = {
            "name": container.get("name", "main"),
            "image": container.get("image", ""),
            "ready": ready,
            "started": "running" in state,
            "restartCount": behaviour.restarts,
            "state": state,
        }
        if behaviour.last_terminated_reason:
            reason = behaviour.last_terminated_reason
            status["lastState"] = {"terminated": {"reason": reason, "exitCode": 137}}
        containers.append(status)
    flag = "True" if ready else "False"
    phase = "Pending" if behaviour.waiting_reason == "ImagePullBackOff" else "Running"
    return {
        "phase": phase,
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "hostIP": "10.0.0.1",
        "startTime": _ts(),
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": flag},
            {"type": "Ready", "status": flag},
        ],
        "containerStatuses": containers,
    }


def _pod_network(arg: str, previous: str | None, host: str) -> str:
    """``arg`` with the KV-event endpoints' wildcard host made the pod's own address."""
    if previous == "--kv-events-config":
        return arg.replace("tcp://*:", f"tcp://{host}:")
    if arg.startswith("--kv-events-config="):
        return arg.replace("tcp://*:", f"tcp://{host}:")
    return arg


def simulator_argv(pod: Obj, host: str, port: int) -> list[str]:
    """``python -m sagellm_sim`` with the pod's args, ``$(VAR)`` expanded, host/port replaced,
    wildcard KV-event endpoints bound to the pod's address."""
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value", "") for e in container.get("env", []) if "value" in e}
    args = [
        re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), a)
        for a in container.get("args", [])
    ]
    out: list[str] = []
    skip = False
    args = [_pod_network(a, args[i - 1] if i else None, host) for i, a in enumerate(args)]
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in ("--host", "--port"):
            skip = True
            continue
        if arg.startswith(("--host=", "--port=")):
            continue
        out.append(arg)
    return [sys.executable, "-m", "sagellm_sim", *out, "--host", host, "--port", str(port)]


@dataclass
class Termination:
    """How the kubelet ended one pod. Loads are the engine's running + waiting requests (None:
    no engine, or its /metrics could not be read)."""

    pod: str
    grace_s: float
    busy_at_delete: float | None = None
    busy_at_sigterm: float | None = None
    prestop_s: float = 0.0
    killed: bool = False
