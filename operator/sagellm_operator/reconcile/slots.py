"""Which indices a role's instances hold: a pure choice, so a scale-in drains the cheapest one.

A drain ends when the engine's last stream ends, so the instance to remove is the one whose
streams end soonest: one that is not Ready (no router sends it requests), else the one with the
fewest running + waiting requests. Without loads (unreadable, or all equal) the highest index
goes, which keeps indices dense when nothing tells them apart. A scale-out fills the lowest
index no instance holds (draining ones and ones being deleted included), so a new instance never
shares a name with one that is still on its way out, and starts at once.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Held:
    """An index that a live, non-draining instance of the role holds."""

    ready: bool
    load: float | None
    """Running + waiting requests of its engine; None when not read or unreadable."""


def kept_indices(replicas: int, held: Mapping[int, Held], taken: set[int], limit: int) -> list[int]:
    """The ``replicas`` indices the role keeps: every held one while they are not too many, the
    held ones whose instances are busiest when they are, and the lowest indices below ``limit``
    outside ``taken`` (draining or being deleted) for the rest; fewer when none is free until
    a drain ends (names have room for ``limit - 1`` only)."""
    if len(held) > replicas:
        order = sorted(held, key=lambda i: _drop_rank(i, held[i]))
        return sorted(order[len(held) - replicas :])
    free = (i for i in range(limit) if i not in taken and i not in held)
    return sorted([*held, *itertools.islice(free, replicas - len(held))])


def _drop_rank(index: int, held: Held) -> tuple[bool, float, int]:
    """Ascending: the first is dropped first (not Ready, then fewest requests, unknown loads
    counted as busy, then the highest index)."""
    return held.ready, math.inf if held.load is None else held.load, -index


def held_by_index(
    serving: list[dict[str, Any]], loads: Mapping[str, float | None]
) -> dict[int, Held]:
    """Each index of ``serving`` (a role's live, non-draining instances; two share an index
    during a rolling update) with its readiness and summed load (``loads`` by instance name)."""
    held: dict[int, Held] = {}
    for inst in serving:
        index = int(inst["spec"]["index"])
        ready = bool((inst.get("status") or {}).get("ready"))
        load = loads.get(inst["metadata"]["name"]) if ready else 0.0
        prev = held.get(index)
        if prev is not None:
            ready = ready or prev.ready
            load = None if load is None or prev.load is None else load + prev.load
        held[index] = Held(ready, load)
    return held
