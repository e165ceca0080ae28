"""Engine pod termination: a preStop hook that waits until the engine is idle, and a grace
period that fits it.

When Kubernetes ends a pod (``kubectl delete pod``, node drain, eviction, or the operator
deleting a drained instance) the kubelet runs the preStop hook before SIGTERM. The hook:
1. sleeps ``D`` (the discovery latency bound), while the operator shows the endpoint as draining
   and every router replica stops choosing it;
2. reads the engine's own ``/metrics`` (``vllm:num_requests_running`` +
   ``vllm:num_requests_waiting``) every second until both are 0 on two consecutive reads, or
   ``D + drain timeout`` seconds have passed since it started; an engine that refuses the
   connection holds nothing, so the hook ends at once.
Only then does the kubelet send SIGTERM. The script needs only ``python3`` (present in the vLLM
image and the project image); it reads the pod IP from ``POD_IP``.

``terminationGracePeriodSeconds`` = the hook's bound + ``SHUTDOWN_MARGIN_S`` for the engine to
exit after SIGTERM (a real kubelet kills the container at the end of the grace period, hook
included).
"""

from __future__ import annotations

import math
from typing import Any

Obj = dict[str, Any]
SHUTDOWN_MARGIN_S = 30
IDLE_READS = 2
POLL_S = 1

PRESTOP_SCRIPT = """\
import os, sys, time, urllib.error, urllib.request
bound, limit, port = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
end = time.monotonic() + bound + limit
url = "http://%s:%s/metrics" % (os.environ.get("POD_IP") or "127.0.0.1", port)
names = ("vllm:num_requests_running", "vllm:num_requests_waiting")
if limit > 0:
    time.sleep(bound)
zeros = 0
while limit > 0 and zeros < IDLE_READS and time.monotonic() < end:
    try:
        text = urllib.request.urlopen(url, timeout=3).read().decode()
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError):
            break
        text = ""
    except OSError:
        text = ""
    busy, seen = 0.0, False
    for line in text.splitlines():
        brace, space = line.find("{"), line.find(" ")
        if brace != -1 and (space == -1 or brace < space):
            name, rest = line[:brace], line[line.rfind("}") + 1:]
        else:
            name, rest = line[:space], line[space:]
        if name in names:
            busy, seen = busy + float(rest.split()[0]), True
    zeros = zeros + 1 if seen and busy == 0 else 0
    if zeros < IDLE_READS:
        time.sleep(POLL_S)
""".replace("IDLE_READS", str(IDLE_READS)).replace("POLL_S", str(POLL_S))


def prestop_bound(bound_s: float, drain_timeout_s: int) -> int:
    """Seconds the preStop hook may take at most (D, then up to the drain timeout)."""
    return math.ceil(bound_s) + drain_timeout_s


def grace_period(bound_s: float, drain_timeout_s: int) -> int:
    """``terminationGracePeriodSeconds`` that fits the hook and the engine's own shutdown."""
    return prestop_bound(bound_s, drain_timeout_s) + SHUTDOWN_MARGIN_S


def prestop_hook(bound_s: float, drain_timeout_s: int, port: int) -> Obj:
    """The container's ``lifecycle`` with the wait-until-idle preStop hook."""
    argv = ["python3", "-c", PRESTOP_SCRIPT, str(bound_s), str(drain_timeout_s), str(port)]
    return {"preStop": {"exec": {"command": argv}}}
