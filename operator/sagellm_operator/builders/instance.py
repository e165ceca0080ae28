"""ExecutionInstance manifests from (pool, role, plan, index).

Names are deterministic — ``<pool>-<role>-<index>-<spec hash>`` — so a restarted operator finds
the instances it made instead of creating duplicates. The hash (also the ``sagellm.io/spec-hash``
label) changes exactly when the instance spec changes, so during a rolling update the old and
the new instance of one index live side by side under different names: the new one starts, and
the old one drains only once the new one is ready.
"""

from __future__ import annotations

from typing import Any

from sagellm_core.api import ExecutionInstanceSpec, InferencePoolSpec, ParallelismSizes, Role
from sagellm_core.api import labels as L
from sagellm_core.planner import Plan
from sagellm_operator.builders.hashing import spec_hash

Obj = dict[str, Any]


def instance_name(pool: str, role: Role, index: int, spec_hash: str) -> str:
    return f"{pool}-{L.role_label_value(role)}-{index}-{spec_hash}"


def build_instance(
    pool: Obj, spec: InferencePoolSpec, role: Role, plan: Plan, index: int,
    argvs: tuple[list[str], list[str] | None], drain_timeout_s: int,
) -> Obj:  # fmt: skip
    lay = plan.layout
    nodes = plan.nodes_per_instance
    inst_spec = ExecutionInstanceSpec(
        pool=pool["metadata"]["name"], role=role, index=index, model=spec.model,
        engine=spec.engine, nodes=nodes, args=argvs[0], worker_args=argvs[1],
        parallelism=ParallelismSizes(tensor=lay.tensor, pipeline=lay.pipeline, data=lay.data,
                                     expert=lay.expert),
        gpus_per_pod=plan.gpus_per_instance // nodes, drain_timeout_seconds=drain_timeout_s,
    ).to_wire()  # fmt: skip
    digest = spec_hash(inst_spec)
    name = instance_name(pool["metadata"]["name"], role, index, digest)
    return {
        "apiVersion": L.API_VERSION,
        "kind": L.INSTANCE_KIND,
        "metadata": {
            "name": name,
            "namespace": pool["metadata"]["namespace"],
            "labels": {
                L.LABEL_POOL: pool["metadata"]["name"],
                L.LABEL_ROLE: L.role_label_value(role),
                L.LABEL_INSTANCE: name,
                L.LABEL_ENGINE: L.role_label_value(str(spec.engine.kind)),
                L.LABEL_MANAGED_BY: L.MANAGED_BY_VALUE,
                L.LABEL_SPEC_HASH: digest,
            },
        },
        "spec": inst_spec,
    }
