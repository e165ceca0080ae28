"""Pure decisions for a pool's instances: what to create, update, drain and delete.

Inputs: desired instance manifests by name, existing instances by name, the time and the drain
timeout. Output: :class:`Actions`. Rules:
- missing desired instances are created (deterministic names, so never duplicated);
- instances no longer desired are drained first (annotation), then deleted once the router
  reports them idle or the drain timeout passes;
- outdated instances (spec-hash label differs) are updated one per role at a time, and only
  when every instance of that role is settled (ready and serving its current generation).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from sagellm_core.api import labels as L

Obj = dict[str, Any]


@dataclass
class Actions:
    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    drain: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        return bool(self.create or self.update or self.drain or self.delete)


def _hash(obj: Obj) -> str | None:
    labels: dict[str, str] = obj["metadata"].get("labels", {})
    return labels.get(L.LABEL_SPEC_HASH)


def settled(inst: Obj) -> bool:
    status = inst.get("status") or {}
    gen = inst["metadata"].get("generation")
    return bool(status.get("ready")) and status.get("observedGeneration") == gen


def _drain_done(inst: Obj, now: datetime.datetime, timeout: float) -> bool:
    notes = inst["metadata"].get("annotations") or {}
    # ``ready`` turns False as soon as the instance reports Draining, so "it served" is read
    # from its URL: an instance that never had a serving pod has none.
    if notes.get(L.ANNOTATION_IDLE) == "true" or not (inst.get("status") or {}).get("url"):
        return True  # the router says idle, or it never served
    started = notes.get(L.ANNOTATION_DRAIN_STARTED)
    if not started:
        return False
    since = datetime.datetime.fromisoformat(started.replace("Z", "+00:00"))
    return (now - since).total_seconds() >= timeout


def decide(desired: dict[str, Obj], existing: dict[str, Obj], now: datetime.datetime,
           drain_timeout: float) -> Actions:  # fmt: skip
    acts = Actions()
    acts.create = [obj for name, obj in sorted(desired.items()) if name not in existing]
    for name, inst in sorted(existing.items()):
        if name in desired or inst["metadata"].get("deletionTimestamp"):
            continue
        draining = (inst["metadata"].get("annotations") or {}).get(L.ANNOTATION_DRAINING)
        if draining != "true":
            acts.drain.append(name)
        elif _drain_done(inst, now, drain_timeout):
            acts.delete.append(name)
    roles: dict[str, list[str]] = {}
    for name, obj in sorted(desired.items(), key=lambda kv: kv[1]["spec"]["index"]):
        roles.setdefault(obj["metadata"]["labels"][L.LABEL_ROLE], []).append(name)
    for names in roles.values():
        live = [existing[n] for n in names if n in existing]
        outdated = [n for n in names if n in existing and _hash(existing[n]) != _hash(desired[n])]
        if outdated and all(settled(i) for i in live) and len(live) == len(names):
            acts.update.append(desired[outdated[0]])
    return acts
