"""Engine argv of one instance, from core's ``vllm serve`` builder (``sagellm_core.vllm_args``).

Inputs: the pool spec, the role, the role's plan and the pod port. Output: the argv the serving
process runs (``ExecutionInstance.spec.args``) and, for an instance that spans nodes, the
LeaderWorkerSet workers' argv (``spec.workerArgs``: rank ``$(LWS_WORKER_INDEX)``,
``--headless``). Both come from :func:`sagellm_core.vllm_args.instance_argvs`.
"""

from __future__ import annotations

from sagellm_core.api import InferencePoolSpec, Role
from sagellm_core.planner import Plan
from sagellm_core.vllm_args import instance_argvs


def instance_args(
    spec: InferencePoolSpec, role: Role, plan: Plan, port: int
) -> tuple[list[str], list[str] | None]:
    """(the serving process's argv, the multi-node workers' argv or None) for ``role``."""
    return instance_argvs(spec, role, plan.layout, plan.nodes_per_instance, port)
