"""Kubernetes-style status conditions (the ``metav1.Condition`` shape), built in one place.

Every condition names the ``observedGeneration`` it was computed for, so a reader can tell a
stale ``Ready=True`` from a current one, and keeps its ``lastTransitionTime`` for as long as
its status holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Obj = dict[str, Any]


def previous(conditions: Iterable[Mapping[str, Any]], kind: str) -> Mapping[str, Any]:
    """The condition of type ``kind`` among ``conditions`` ({} when there is none)."""
    return next((c for c in conditions if c.get("type") == kind), {})


def condition(
    old: Iterable[Mapping[str, Any]],
    kind: str,
    ok: bool,
    reason: str,
    message: str,
    *,
    now: str | None,
    generation: int | None,
) -> Obj:
    """The condition ``kind`` as of ``now`` for the object at ``generation``.

    ``old`` is the object's current conditions: the transition time carries over while the
    status stays the same. ``now`` may be None for a caller that stamps it when writing.
    """
    status = "True" if ok else "False"
    prev = previous(old, kind)
    since = prev.get("lastTransitionTime") if prev.get("status") == status else None
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or now,
        "observedGeneration": generation,
    }
