"""The autoscaler's pure step for one pool: per owned role, core's ``decide`` on the demand read
this tick, and what to write (spec replicas, an Event, the role's status entry).

Ownership of ``spec.roles.<role>.replicas``: while ``spec.autoscaling.enabled`` gives a role
bounds, the autoscaler owns its replicas. A value written by anyone else (``kubectl scale``,
HPA through ``/scale``, a re-applied manifest) is taken as the current count, and the next
decision replaces it with the autoscaler's count, with a Warning Event ``ReplicasOverridden``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sagellm_core.api.autoscaling import AutoscalingSpec
from sagellm_core.autoscale import Decision, History, Signals, bounds_of, decide, policy_of
from sagellm_core.demand import PoolDemand

Obj = dict[str, Any]


@dataclass
class RoleMemory:
    """What the autoscaler remembers of one role between ticks (lost on restart: the idle
    clock and the windows then start again, which only delays a scale-in)."""

    history: History
    written: int | None = None
    last_scale: str | None = None


@dataclass
class RoleChange:
    role: str
    decision: Decision
    current: int
    source: str
    overridden: bool = False

    @property
    def event_reason(self) -> str:
        new, old = self.decision.replicas, self.current
        if old == 0:
            return "ScaledFromZero"
        if new == 0:
            return "ScaledToZero"
        return "ScaledUp" if new > old else "ScaledDown"


@dataclass
class PoolStep:
    changes: list[RoleChange] = field(default_factory=list)
    status: list[Obj] = field(default_factory=list)


def autoscaling_of(pool: Obj) -> AutoscalingSpec | None:
    """The pool's autoscaling spec when enabled and valid (the pool reconcile reports a bad
    one), else None."""
    raw = (pool.get("spec") or {}).get("autoscaling")
    if not isinstance(raw, dict) or not raw.get("enabled"):
        return None
    try:
        return AutoscalingSpec.model_validate(raw)
    except ValueError:
        return None


def current_replicas(pool: Obj, role: str) -> int:
    section = ((pool.get("spec") or {}).get("roles") or {}).get(role) or {}
    value = section.get("replicas", 1)
    return value if isinstance(value, int) else 1


def signals_for(
    role: str, demand: PoolDemand | None, engines: dict[str, float] | None
) -> tuple[Signals, str]:
    """Router demand when some router reported the pool, else the engines' own load."""
    if demand is not None and demand.routers:
        return demand.signals(role), "router"
    if engines is not None and role in engines:
        return Signals(in_flight=engines[role]), "engines"
    return Signals(), "none"


def step(
    pool: Obj,
    spec: AutoscalingSpec,
    demand: PoolDemand | None,
    engines: dict[str, float] | None,
    memory: dict[str, RoleMemory],
    now: float,
    stamp: str,
) -> PoolStep:
    """Decide every owned role; updates ``memory`` in place."""
    out = PoolStep()
    policy = policy_of(spec)
    for role_enum, bounds in spec.bounds_by_role().items():
        role = role_enum.value.lower()
        current = current_replicas(pool, role)
        mem = memory.setdefault(role, RoleMemory(History(last_demand_at=now)))
        signals, source = signals_for(role, demand, engines)
        decision, mem.history = decide(current, signals, bounds_of(bounds), policy,
                                       mem.history, now)  # fmt: skip
        if decision.changed(current):
            overridden = mem.written is not None and mem.written != current
            out.changes.append(RoleChange(role, decision, current, source, overridden))
            mem.written, mem.last_scale = decision.replicas, stamp
        else:  # a count the autoscaler agrees with is its own from now on
            mem.written = current
        entry = {"role": role_enum.value, "replicas": decision.replicas,
                 "reason": decision.reason, "inputs": decision.inputs, "source": source,
                 "lastDecisionTime": stamp}  # fmt: skip
        if mem.last_scale is not None:
            entry["lastScaleTime"] = mem.last_scale
        out.status.append(entry)
    return out
