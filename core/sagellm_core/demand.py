"""The routers' demand series: their names (one place for router and operator) and a pure
parser that sums them over router replicas into the autoscaler's per-role :class:`Signals`.

The router exports (``pool`` is ``namespace/name``, ``role`` is general, prefill or decode):
queued and held requests per pool, in-flight requests per pool and role, an arrivals counter
per pool, and the engines' running/waiting counts, KV usage and TTFT per role. A queued request
needs every serving role, so it counts as demand for each role of its pool.

Beside demand, each router lists the endpoints it holds as draining (``DRAINING``: one series
per pool and instance, value 1). An instance every router replica lists has left every
replica's routable set, so the operator's drain need not wait out the discovery bound for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sagellm_core.autoscale import Signals
from sagellm_core.engine_metrics import parse_sample

PREFIX = "sagellm_router_demand"
QUEUED = f"{PREFIX}_queued_requests"
HELD = f"{PREFIX}_held_requests"
IN_FLIGHT = f"{PREFIX}_in_flight_requests"
ARRIVALS = f"{PREFIX}_arrivals"
ENGINE_RUNNING = f"{PREFIX}_engine_running_requests"
ENGINE_WAITING = f"{PREFIX}_engine_waiting_requests"
KV_USAGE = f"{PREFIX}_kv_usage_ratio"
TTFT = f"{PREFIX}_ttft_seconds"
DRAINING = "sagellm_router_draining_endpoint"


@dataclass
class PoolDemand:
    """One pool's demand summed over the router replicas that reported it."""

    queued: float = 0.0
    held: float = 0.0
    in_flight: dict[str, float] = field(default_factory=dict)
    routers: int = 0

    def signals(self, role: str) -> Signals:
        return Signals(queued=self.queued, in_flight=self.in_flight.get(role, 0.0))


def _labels(text: str) -> dict[str, str]:
    """``{a="x",b="y"}`` -> {a: x, b: y} (our label values hold no quotes or commas)."""
    out = {}
    for part in text.strip("{}").split(","):
        key, _, value = part.partition("=")
        if key:
            out[key.strip()] = value.strip().strip('"')
    return out


def add_router_page(total: dict[str, PoolDemand], text: str) -> None:
    """Add one router's ``/metrics`` page to ``total`` (pool -> demand)."""
    seen: set[str] = set()
    for line in text.splitlines():
        if not line.startswith(PREFIX):
            continue
        sample = parse_sample(line)
        brace = line.find("{")
        if sample is None or brace == -1:
            continue
        name, value = sample
        labels = _labels(line[brace : line.rfind("}") + 1])
        pool = labels.get("pool")
        if pool is None:
            continue
        demand = total.setdefault(pool, PoolDemand())
        if pool not in seen:
            seen.add(pool)
            demand.routers += 1
        if name == QUEUED:
            demand.queued += value
        elif name == HELD:
            demand.held += value
        elif name == IN_FLIGHT and "role" in labels:
            role = labels["role"]
            demand.in_flight[role] = demand.in_flight.get(role, 0.0) + value


def draining_instances(text: str) -> set[tuple[str, str]]:
    """(pool, instance) pairs one router's ``/metrics`` page lists as draining."""
    out: set[tuple[str, str]] = set()
    for line in text.splitlines():
        if not line.startswith(DRAINING + "{"):
            continue
        sample = parse_sample(line)
        labels = _labels(line[len(DRAINING) : line.rfind("}") + 1])
        if sample is not None and sample[1] == 1 and "pool" in labels and "instance" in labels:
            out.add((labels["pool"], labels["instance"]))
    return out


__all__ = ["DRAINING", "PoolDemand", "add_router_page", "draining_instances"]
