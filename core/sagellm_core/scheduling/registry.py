"""The one place that builds the scheduling policies (one fresh set per pool: some keep state).

``default_policies`` are the built-ins; ``policy_plugins`` + ``policies_with_plugins`` add
third-party ones (``sagellm_core.plugins``: entry points or ``"module:attr"`` references).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sagellm_core.plugins import (
    SCHEDULING_POLICY,
    EntryPoints,
    Plugin,
    PluginError,
    build,
    discover,
)
from sagellm_core.scheduling.base import SchedulingPolicy, capabilities_of
from sagellm_core.scheduling.policies.adaptive import AdaptiveConfig, AdaptivePolicy
from sagellm_core.scheduling.policies.cost_optimized import CostOptimizedPolicy
from sagellm_core.scheduling.policies.fifo import FifoPolicy
from sagellm_core.scheduling.policies.priority import PriorityPolicy
from sagellm_core.scheduling.policies.slo_aware import SloAwarePolicy
from sagellm_core.scheduling.predictor import TtftPredictor


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """Knobs of all policies: aging interval, predictor, SLO shedding, adaptive thresholds."""

    aging_interval_s: float | None = 30.0
    predictor: TtftPredictor = field(default_factory=TtftPredictor)
    shed_on_slo_miss: bool = False
    shed_grace_s: float = 0.0
    default_tokens_per_s: float = 2000.0
    adaptive: AdaptiveConfig = field(default_factory=AdaptiveConfig)


def default_policies(
    settings: PolicySettings | None = None, *, now: float = 0.0
) -> dict[str, SchedulingPolicy]:
    """fifo, priority, slo_aware, cost_optimized and adaptive (which switches among the four)."""
    s = settings or PolicySettings()
    policies: dict[str, SchedulingPolicy] = {
        "fifo": FifoPolicy(),
        "priority": PriorityPolicy(aging_interval_s=s.aging_interval_s, predictor=s.predictor),
        "slo_aware": SloAwarePolicy(
            predictor=s.predictor, shed=s.shed_on_slo_miss, shed_grace_s=s.shed_grace_s
        ),
        "cost_optimized": CostOptimizedPolicy(
            predictor=s.predictor, default_tokens_per_s=s.default_tokens_per_s
        ),
    }
    policies["adaptive"] = AdaptivePolicy(
        dict(policies), s.adaptive, now=now, predictor=s.predictor
    )
    return policies


BUILTIN_POLICIES = ("fifo", "priority", "slo_aware", "cost_optimized", "adaptive")


def policy_plugins(
    references: Iterable[str] = (), entry_points: EntryPoints | None = None
) -> dict[str, Plugin]:
    """Third-party policies (entry points + ``"module:attr"`` references), validated by name;
    raises ``PluginError``. Build them per pool with ``policies_with_plugins``."""
    return discover(SCHEDULING_POLICY, references, BUILTIN_POLICIES, entry_points)


def policies_with_plugins(
    plugins: Mapping[str, Plugin],
    settings: PolicySettings | None = None,
    *,
    now: float = 0.0,
) -> dict[str, SchedulingPolicy]:
    """``default_policies`` plus one fresh instance of each plugin policy (factory(settings)).

    A factory that fails or returns something without the policy methods, or with
    ``capabilities`` that are not a ``Capabilities``, raises ``PluginError``.
    """
    s = settings or PolicySettings()
    policies = default_policies(s, now=now)
    for name, item in plugins.items():
        policy = build(item, s)
        try:
            capabilities_of(policy)
        except TypeError as exc:
            raise PluginError(f"plugin {item.source}: {exc}") from exc
        policies[name] = policy
    return policies
