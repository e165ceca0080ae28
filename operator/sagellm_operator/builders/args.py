"""Engine argv of one instance, from core's ``vllm serve`` builder (``sagellm_core.vllm_args``).

Inputs: the pool spec, the role, the role's plan and the pod port. Output: the argv the serving
process runs (stored in ``ExecutionInstance.spec.args``). A multi-node instance stores its
LeaderWorkerSet leader's argv (``--nnodes N --node-rank 0 --master-addr $(LWS_LEADER_ADDRESS)``);
:func:`worker_args` turns it into the workers' argv (rank ``$(LWS_WORKER_INDEX)``, ``--headless``),
exactly what the core builder emits for a worker.
"""

from __future__ import annotations

from dataclasses import replace

from sagellm_core.api import InferencePoolSpec, Role
from sagellm_core.planner import Plan
from sagellm_core.vllm_args import (
    LWS_LEADER_ADDRESS,
    LWS_WORKER_INDEX,
    MultiNode,
    serve_args,
    serve_config_for_pool,
)


def instance_args(spec: InferencePoolSpec, role: Role, plan: Plan, port: int) -> list[str]:
    """The serving process's argv for one instance of ``role`` (the leader's when multi-node)."""
    nodes = plan.nodes_per_instance
    multi = MultiNode(nodes, 0, LWS_LEADER_ADDRESS) if nodes > 1 else None
    cfg = serve_config_for_pool(spec, role, plan.layout, multi_node=multi)
    return serve_args(replace(cfg, port=port))


def _leader_group(nodes: int) -> list[str]:
    return ["--nnodes", str(nodes), "--node-rank", "0", "--master-addr", LWS_LEADER_ADDRESS]


def worker_args(leader: list[str], nodes: int) -> list[str]:
    """The worker argv of a LeaderWorkerSet whose leader runs ``leader``.

    Raises ValueError when ``leader`` does not carry the leader's multi-node flags.
    """
    group = _leader_group(nodes)
    for at in range(len(leader) - len(group) + 1):
        if leader[at : at + len(group)] == group:
            worker = [*group[:3], LWS_WORKER_INDEX, *group[4:], "--headless"]
            return [*leader[:at], *worker, *leader[at + len(group) :]]
    raise ValueError(f"argv has no leader flags {' '.join(group)!r}: {' '.join(leader)!r}")
