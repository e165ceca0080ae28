"""Engine Pods (and pod templates) from an ExecutionInstance.

One container running ``vllm serve <args>`` (or ``sagellm sim <args>`` for the Simulator engine,
same argv, no GPU requests), with: GPU requests = GPUs per pod, ``/dev/shm`` as a memory
emptyDir, the model cache PVC, HF token from a Secret, the pod IP as VLLM_HOST_IP and NIXL side
channel host for PD and multi-node, /health probes sized for model loading, a restricted
security context, GPU node selection and tolerations, and labels. The caller adds the owner
reference (``kopf.append_owner_reference``): builders do no I/O and import no framework.
"""

from __future__ import annotations

from typing import Any

from sagellm_core.api import ExecutionInstanceSpec, Role
from sagellm_core.api import labels as L
from sagellm_operator.builders.lifecycle import grace_period, prestop_hook
from sagellm_operator.settings import PodDefaults

Obj = dict[str, Any]
NIXL_PORT = 5600
SIMULATOR_UID = 10001
"""The project image's user (see the Dockerfile); Simulator pods always run as it."""
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"


def is_simulator(spec: ExecutionInstanceSpec) -> bool:
    return str(spec.engine.kind) == "Simulator"


def _env(spec: ExecutionInstanceSpec) -> list[Obj]:
    pod_ip = {"valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    env: list[Obj] = [{"name": "POD_IP", **pod_ip}, {"name": "VLLM_NO_USAGE_STATS", "value": "1"}]
    if spec.role is not Role.GENERAL or spec.nodes > 1:
        env.append({"name": "VLLM_HOST_IP", **pod_ip})
    if spec.role is not Role.GENERAL:
        env.append({"name": "VLLM_NIXL_SIDE_CHANNEL_HOST", **pod_ip})
        env.append({"name": "VLLM_NIXL_SIDE_CHANNEL_PORT", "value": str(NIXL_PORT)})
    secret = spec.engine.hf_token_secret
    if secret is not None:
        ref = {"secretKeyRef": {"name": secret.name, "key": secret.key}}
        env.append({"name": "HF_TOKEN", "valueFrom": ref})
    env += [{"name": e.name, "value": e.value} for e in spec.engine.env]
    return env


def _resources(spec: ExecutionInstanceSpec) -> Obj:
    user = spec.engine.resources
    requests: Obj = dict(user.requests) if user else {}
    limits: Obj = dict(user.limits) if user else {}
    if not is_simulator(spec) and spec.gpus_per_pod > 0:
        requests[spec.engine.gpu_resource] = spec.gpus_per_pod
        limits[spec.engine.gpu_resource] = spec.gpus_per_pod
    out: Obj = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _probes(port: int, defaults: PodDefaults) -> Obj:
    http = {"httpGet": {"path": "/health", "port": "http"}}
    return {
        "startupProbe": {**http, "periodSeconds": 10, "failureThreshold":
                         defaults.startup_failure_threshold, "timeoutSeconds": 5},
        "readinessProbe": {**http, "periodSeconds": 5, "failureThreshold": 3, "timeoutSeconds": 5},
        "livenessProbe": {**http, "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 5},
    }  # fmt: skip


def _volumes(spec: ExecutionInstanceSpec) -> tuple[list[Obj], list[Obj]]:
    shm: Obj = {
        "name": "dshm",
        "emptyDir": {"medium": "Memory", "sizeLimit": str(spec.engine.shm_size)},
    }
    volumes: list[Obj] = [shm]
    mounts: list[Obj] = [{"name": "dshm", "mountPath": "/dev/shm"}]
    cache = spec.engine.model_cache
    if cache is not None:
        claim = {"claimName": cache.pvc_name, "readOnly": cache.read_only}
        volumes.append({"name": "model-cache", "persistentVolumeClaim": claim})
        mounts.append({"name": "model-cache", "mountPath": cache.mount_path,
                       "readOnly": cache.read_only})  # fmt: skip
    return volumes, mounts


def _run_as(spec: ExecutionInstanceSpec, defaults: PodDefaults) -> int | None:
    """The uid to run as: the simulator image's own user, else the configured vLLM uid (None:
    the image's user; the official vLLM image runs as root)."""
    return SIMULATOR_UID if is_simulator(spec) else defaults.vllm_run_as_user


def container_security(spec: ExecutionInstanceSpec, defaults: PodDefaults) -> Obj:
    """Restricted profile: no privilege escalation, no capabilities, the runtime's seccomp
    profile, and a non-root user unless the engine image needs root."""
    uid = _run_as(spec, defaults)
    out: Obj = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsNonRoot": uid is not None,
    }
    if uid is not None:
        out.update(runAsUser=uid, runAsGroup=uid)
    return out  # fmt: skip


def pod_security(spec: ExecutionInstanceSpec, defaults: PodDefaults) -> Obj:
    """Pod level: seccomp RuntimeDefault; with a non-root uid, volumes owned by its group."""
    uid = _run_as(spec, defaults)
    out: Obj = {"seccompProfile": {"type": "RuntimeDefault"}}
    if uid is not None:
        out.update(runAsNonRoot=True, runAsUser=uid, runAsGroup=uid, fsGroup=uid)
    return out


def container(
    spec: ExecutionInstanceSpec, defaults: PodDefaults, args: list[str], serving: bool = True
) -> Obj:
    """The engine container; ``serving=False`` for headless multi-node workers (no HTTP)."""
    sim = is_simulator(spec)
    image = spec.engine.image or (defaults.simulator_image if sim else defaults.vllm_image)
    out: Obj = {
        "name": "engine",
        "image": image,
        "command": ["sagellm", "sim"] if sim else ["vllm", "serve"],
        "args": args,
        "env": _env(spec),
        "resources": _resources(spec),
        "volumeMounts": _volumes(spec)[1],
        "securityContext": container_security(spec, defaults),
    }
    if serving:
        out["ports"] = [{"name": "http", "containerPort": defaults.port, "protocol": "TCP"}]
        if spec.role is not Role.GENERAL:
            out["ports"].append({"name": "nixl", "containerPort": NIXL_PORT, "protocol": "TCP"})
        out.update(_probes(defaults.port, defaults))
        out["lifecycle"] = _lifecycle(spec, defaults)
    return out


def _lifecycle(spec: ExecutionInstanceSpec, defaults: PodDefaults) -> Obj:
    return prestop_hook(defaults.discovery_bound_seconds, spec.drain_timeout_seconds, defaults.port)


def pod_spec(spec: ExecutionInstanceSpec, defaults: PodDefaults, engine: Obj) -> Obj:
    node_selector = dict(spec.engine.node_selector)
    tolerations = list(spec.engine.tolerations)
    if not is_simulator(spec):
        if spec.engine.gpu_type:
            node_selector.setdefault(GPU_PRODUCT_LABEL, spec.engine.gpu_type)
        if defaults.gpu_toleration:
            tolerations.append({"key": spec.engine.gpu_resource, "operator": "Exists",
                                "effect": "NoSchedule"})  # fmt: skip
    out: Obj = {
        "containers": [engine],
        "volumes": _volumes(spec)[0],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": grace_period(
            defaults.discovery_bound_seconds, spec.drain_timeout_seconds
        ),
        "enableServiceLinks": False,
        "securityContext": pod_security(spec, defaults),
    }
    if node_selector:
        out["nodeSelector"] = node_selector
    if tolerations:
        out["tolerations"] = tolerations
    return out


def pod_name(instance: Obj) -> str:
    """``<instance>`` when the instance's name already ends with its spec hash (as the
    operator names them), else ``<instance>-<spec hash>``: a new spec gives a new pod name."""
    name, digest = instance["metadata"]["name"], instance["metadata"]["labels"][L.LABEL_SPEC_HASH]
    return name if name.endswith(f"-{digest}") else f"{name}-{digest}"


def pod_labels(instance: Obj) -> dict[str, str]:
    keys = (L.LABEL_POOL, L.LABEL_ROLE, L.LABEL_INSTANCE, L.LABEL_ENGINE, L.LABEL_SPEC_HASH,
            L.LABEL_MANAGED_BY)  # fmt: skip
    labels = instance["metadata"].get("labels", {})
    return {k: labels[k] for k in keys if k in labels}


def build_pod(instance: Obj, spec: ExecutionInstanceSpec, defaults: PodDefaults) -> Obj:
    """The single Pod of a one-node instance (``spec``: the instance's, decoded)."""
    engine = container(spec, defaults, list(spec.args))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(instance),
            "namespace": instance["metadata"]["namespace"],
            "labels": pod_labels(instance),
            "annotations": {"kubectl.kubernetes.io/default-container": "engine"},
        },
        "spec": pod_spec(spec, defaults, engine),
    }
