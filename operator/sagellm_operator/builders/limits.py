"""Plans this operator refuses to run although the planner found them: more nodes per instance
than the operator allows, or a multi-node group whose derived names would not fit.

Inputs: the pool name, core's :class:`PoolPlan` and the node limit. Output: one message per
problem, naming the role and what to change (the planner's own fix for the node limit).
"""

from __future__ import annotations

from dataclasses import replace

from sagellm_core.api import labels as L
from sagellm_core.planner import PoolPlan, plan


def limit_errors(pool_name: str, pools: PoolPlan, max_nodes: int) -> list[str]:
    """Plans the operator will not run: more nodes per instance than ``max_nodes`` (with the
    planner's fix for that limit), or a multi-node group whose derived names would not fit."""
    errors = []
    for role, p in pools.plans.items():
        nodes = p.nodes_per_instance
        if nodes > max_nodes:
            limit = max_nodes * p.request.gpus_per_node
            fix = plan(replace(p.request, gpus_available=limit)).errors
            errors.append(
                f"roles.{role.lower()}: the plan {p.layout.describe()} needs {nodes} nodes per "
                f"instance, more than this operator's maximum of {max_nodes} "
                f"(--max-nodes-per-instance). " + (fix[-1] if fix else "Use larger GPUs.")
            )
        elif nodes > 1 and len(pool_name) > L.MAX_MULTI_NODE_POOL_NAME:
            errors.append(
                f"roles.{role.lower()}: the plan needs {nodes} nodes, run as a LeaderWorkerSet "
                f"whose StatefulSet names need a pool name of at most "
                f"{L.MAX_MULTI_NODE_POOL_NAME} characters; {pool_name!r} has {len(pool_name)}"
            )
    return errors
