"""The scheduling policies under the seed documents' class names.

``FIFOPolicy`` … ``AdaptivePolicy`` are the router's own policies (``sagellm_core``); a manager
takes them by name (``scheduling_policy="priority"``). ``HybridSchedulingPolicy`` schedules a
mixed LLM + embedding fleet: each model's pool gets the policy for its kind.
"""

from __future__ import annotations

from dataclasses import dataclass

from sagellm_core.scheduling.policies.adaptive import AdaptivePolicy
from sagellm_core.scheduling.policies.cost_optimized import CostOptimizedPolicy
from sagellm_core.scheduling.policies.fifo import FifoPolicy as FIFOPolicy
from sagellm_core.scheduling.policies.priority import PriorityPolicy
from sagellm_core.scheduling.policies.slo_aware import SloAwarePolicy as SLOAwarePolicy


@dataclass(frozen=True)
class HybridSchedulingPolicy:
    """LLM pools (completions, chat) use ``llm_policy``, embedding pools ``embedding_policy``:
    short embedding requests are not ranked by the LLM's SLO or cost logic.

    ``ControlPlaneManager(scheduling_policy=HybridSchedulingPolicy(...))`` or
    ``manager.update_policy(HybridSchedulingPolicy(...))``; the manager checks both names.
    """

    llm_policy: str = "adaptive"
    embedding_policy: str = "fifo"
    name = "hybrid"

    def for_task(self, task: str) -> str:
        """The policy name for a pool of ``task`` (``generate`` or ``embed``)."""
        return self.embedding_policy if task == "embed" else self.llm_policy


__all__ = [
    "AdaptivePolicy",
    "CostOptimizedPolicy",
    "FIFOPolicy",
    "HybridSchedulingPolicy",
    "PriorityPolicy",
    "SLOAwarePolicy",
]
