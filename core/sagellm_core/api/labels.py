"""Every Kubernetes key this project writes: API group, labels, annotations, finalizers,
condition types and reasons. Other modules import these names instead of spelling strings."""

from __future__ import annotations

from typing import Final

GROUP: Final = "sagellm.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = "sagellm.io/v1alpha1"

POOL_KIND: Final = "InferencePool"
POOL_PLURAL: Final = "inferencepools"
POOL_SINGULAR: Final = "inferencepool"
POOL_SHORT_NAMES: Final = ("ipool",)

INSTANCE_KIND: Final = "ExecutionInstance"
INSTANCE_PLURAL: Final = "executioninstances"
INSTANCE_SINGULAR: Final = "executioninstance"
INSTANCE_SHORT_NAMES: Final = ("einst",)

# Labels set on ExecutionInstances, Pods and LeaderWorkerSets.
LABEL_POOL: Final = f"{GROUP}/pool"
LABEL_INSTANCE: Final = f"{GROUP}/instance"
LABEL_ROLE: Final = f"{GROUP}/role"
LABEL_SPEC_HASH: Final = f"{GROUP}/spec-hash"
LABEL_ENGINE: Final = f"{GROUP}/engine"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE: Final = "sagellm-operator"

# Annotations.
ANNOTATION_DRAINING: Final = f"{GROUP}/draining"
ANNOTATION_DRAIN_STARTED: Final = f"{GROUP}/drain-started-at"
ANNOTATION_LAST_APPLIED_HASH: Final = f"{GROUP}/last-applied-hash"

# Finalizers (used only where external state needs cleanup).
FINALIZER_INSTANCE: Final = f"{GROUP}/instance-cleanup"

# Condition types.
CONDITION_READY: Final = "Ready"
CONDITION_PROGRESSING: Final = "Progressing"
CONDITION_DEGRADED: Final = "Degraded"
CONDITION_ACCEPTED: Final = "Accepted"

# Condition reasons.
REASON_INVALID_SPEC: Final = "InvalidSpec"
REASON_PLAN_FAILED: Final = "PlanFailed"
REASON_ALL_READY: Final = "AllReplicasReady"
REASON_SCALING: Final = "Scaling"
REASON_ROLLING_UPDATE: Final = "RollingUpdate"
REASON_WAITING_FOR_PODS: Final = "WaitingForPods"
REASON_INSTANCE_FAILED: Final = "InstanceFailed"
REASON_LWS_MISSING: Final = "LeaderWorkerSetNotInstalled"
REASON_RECONCILED: Final = "Reconciled"
REASON_ACCEPTED: Final = "Accepted"
REASON_MODEL_NAME_CONFLICT: Final = "ModelNameConflict"


# Name lengths. Every name and label value derived from a pool name must fit a DNS label.
DNS_LABEL_MAX: Final = 63
SPEC_HASH_LENGTH: Final = 10
"""Hex digits of the ``spec-hash`` label (also the suffix of pod and LeaderWorkerSet names)."""
MAX_ROLE_REPLICAS: Final = 1000
ROLE_LABEL_VALUES: Final = ("general", "prefill", "decode")
INSTANCE_SUFFIX_MAX: Final = (
    1 + max(map(len, ROLE_LABEL_VALUES)) + 1 + len(str(MAX_ROLE_REPLICAS - 1))
)
"""``-<role>-<index>``: the longest instance name is the pool name plus this."""
POD_SUFFIX_MAX: Final = INSTANCE_SUFFIX_MAX + 1 + SPEC_HASH_LENGTH
"""``<instance>-<spec hash>``: pod and LeaderWorkerSet names, and the LWS name label."""
MAX_POOL_NAME: Final = DNS_LABEL_MAX - POD_SUFFIX_MAX
LWS_STATEFULSET_NAME_MAX: Final = 52
"""A StatefulSet's pods carry ``controller-revision-hash: <statefulset>-<hash>`` (hash up to 10
characters), so a StatefulSet name longer than 52 makes pods that the API server refuses."""
LWS_WORKER_SET_SUFFIX: Final = len("-0")
"""The LeaderWorkerSet names its worker StatefulSet ``<lws name>-<group index>`` (group 0)."""
MAX_MULTI_NODE_POOL_NAME: Final = LWS_STATEFULSET_NAME_MAX - POD_SUFFIX_MAX - LWS_WORKER_SET_SUFFIX


def role_label_value(role: str) -> str:
    """Label values are lower-case role names (``Prefill`` → ``prefill``)."""
    return role.lower()
