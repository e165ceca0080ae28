"""LeaderWorkerSet for instances whose TP×PP spans nodes (multi-node vLLM, mp executor).

Group size = nodes. The leader runs the instance's argv (core's builder: ``--nnodes N --node-rank 0
--master-addr $(LWS_LEADER_ADDRESS)``) and serves HTTP; workers run ``--node-rank
$(LWS_WORKER_INDEX) --headless`` (``spec.workerArgs``, from the same builder).
``RecreateGroupOnPodRestart`` because a vLLM group cannot survive losing a rank. The caller adds
the owner reference.
"""

from __future__ import annotations

from typing import Any

from sagellm_core.api import ExecutionInstanceSpec
from sagellm_operator.builders.pod import container, pod_labels, pod_name, pod_spec
from sagellm_operator.settings import PodDefaults

Obj = dict[str, Any]
LWS_GROUP = "leaderworkerset.x-k8s.io"
LWS_VERSION = "v1"
LWS_PLURAL = "leaderworkersets"


def needs_lws(spec: ExecutionInstanceSpec) -> bool:
    return spec.nodes > 1


def _template(
    instance: Obj, spec: ExecutionInstanceSpec, engine: Obj, defaults: PodDefaults
) -> Obj:
    return {"metadata": {"labels": pod_labels(instance)},
            "spec": pod_spec(spec, defaults, engine)}  # fmt: skip


def build_lws(instance: Obj, spec: ExecutionInstanceSpec, defaults: PodDefaults) -> Obj:
    """The group of a multi-node instance (``spec``: the instance's, decoded)."""
    if spec.worker_args is None:
        raise ValueError(f"instance spans {spec.nodes} nodes but has no spec.workerArgs")
    leader = container(spec, defaults, list(spec.args))
    worker = container(spec, defaults, list(spec.worker_args), serving=False)
    return {
        "apiVersion": f"{LWS_GROUP}/{LWS_VERSION}",
        "kind": "LeaderWorkerSet",
        "metadata": {
            "name": pod_name(instance),
            "namespace": instance["metadata"]["namespace"],
            "labels": pod_labels(instance),
        },
        "spec": {
            "replicas": 1,
            "startupPolicy": "LeaderCreated",
            "leaderWorkerTemplate": {
                "size": spec.nodes,
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": _template(instance, spec, leader, defaults),
                "workerTemplate": _template(instance, spec, worker, defaults),
            },
        },
    }
