"""Who owns a model name: the Gateway API conflict rule applied to InferencePools.

Within one scope (the namespaces a router serves and an operator reconciles) a served model name
belongs to exactly one pool: the oldest claim wins, by creation time, then by declaration order
(static files), then by ``namespace/name``. Every other pool claiming the name is not accepted
and serves nothing for it. The router's discovery and the operator's ``Accepted`` condition both
call :func:`resolve`, so they agree on the same input.

Pure: claims in, verdict out; timestamps are compared, never read from a clock.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

_LATEST = datetime.datetime.max.replace(tzinfo=datetime.UTC)


@dataclass(frozen=True)
class Claim:
    """One pool claiming one model name.

    ``created`` is an RFC 3339 timestamp (Kubernetes ``creationTimestamp``); a claim without
    one (or with an unparsable one) counts as newer than any timestamped claim. ``order`` breaks
    ties before the name: static discovery uses the pool's position in the file, Kubernetes 0.
    """

    key: str
    model: str
    created: str | None = None
    order: int = 0

    def rank(self) -> tuple[datetime.datetime, int, str]:
        return (parse_time(self.created), self.order, self.key)


@dataclass(frozen=True)
class Ownership:
    """The verdict: the owner of each model name and, for each losing pool, who beat it."""

    owners: Mapping[str, str] = field(default_factory=dict)
    """model name → key of the pool that serves it."""
    conflicts: Mapping[str, str] = field(default_factory=dict)
    """key of a pool that is not accepted → key of the pool that owns its model name."""

    def accepted(self, key: str) -> bool:
        return key not in self.conflicts


def parse_time(value: str | None) -> datetime.datetime:
    """An RFC 3339 timestamp as an aware datetime; missing or invalid sorts last."""
    if not value:
        return _LATEST
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return _LATEST
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def resolve(claims: Iterable[Claim]) -> Ownership:
    """Apply the rule to every claim in scope."""
    ranked = sorted(claims, key=Claim.rank)
    owners: dict[str, Claim] = {}
    for claim in ranked:
        owners.setdefault(claim.model, claim)
    conflicts = {c.key: owners[c.model].key for c in ranked if owners[c.model].key != c.key}
    return Ownership({m: c.key for m, c in owners.items()}, conflicts)


def claim_of(obj: Mapping[str, Any]) -> Claim | None:
    """The claim an InferencePool object makes (``spec.model.name``); None without one."""
    meta = obj.get("metadata") or {}
    model = ((obj.get("spec") or {}).get("model") or {}).get("name")
    name = meta.get("name")
    if not isinstance(model, str) or not isinstance(name, str):
        return None
    created = meta.get("creationTimestamp")
    key = f"{meta.get('namespace') or 'default'}/{name}"
    return Claim(key, model, created if isinstance(created, str) else None)


def conflict_message(model: str, owner: str) -> str:
    """The condition and Event message for a pool that lost the name to ``owner``."""
    return (
        f"model name {model!r} is already served by InferencePool {owner}, which claimed it "
        "first; this pool serves nothing until that pool is deleted or renames its model. "
        "Choose another spec.model.name."
    )
