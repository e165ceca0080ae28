"""Pure decisions for a pool's instances: what to create, drain, probe and delete.

Inputs: desired instance manifests by name (``<pool>-<role>-<index>-<spec hash>``, at the
indices each role keeps, :mod:`slots`), existing instances by name, the time, the drain timing
and the idle reads taken so far. Output: :class:`Actions`. Rules:
- an index with no instance gets its instance at once (first start, scale-out, self-heal);
- an index whose instance runs another spec gets the new instance next to the old one (surge),
  one index per role at a time: no surge while a desired instance of that role is starting;
- once the new instance is settled (ready and serving its generation) the old one drains, so a
  role's ready count never drops below its replicas during an update;
- instances at an index the role no longer keeps drain;
- a draining instance is deleted when it has no URL (it never served, or its pod is gone), when
  its discovery wait has ended and two consecutive reads of its engine's ``/metrics`` (at least
  ``poll_s`` apart, both after the wait) found nothing running or waiting, or when the drain
  timeout since it was marked has passed (``timed_out``);
- the discovery wait ends ``D`` after the mark, or earlier, when every router replica has been
  seen listing the instance as draining (``acks``: the time that was seen); while it lasts the
  routers are asked every ``poll_s`` (``confirm``).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sagellm_core.api import labels as L
from sagellm_operator.builders.lifecycle import IDLE_READS

Obj = dict[str, Any]


@dataclass(frozen=True)
class DrainTiming:
    bound_s: float
    """D: every router replica stops choosing a draining endpoint within this time."""
    timeout_s: float
    """Upper bound from marking to deletion (the pool's, else the operator's)."""
    poll_s: float
    """Minimum interval between two reads of the engine's load."""


@dataclass(frozen=True)
class IdleReads:
    """Consecutive reads of an instance's engine that found it idle, and when the last one was."""

    zeros: int
    at: datetime.datetime


@dataclass
class Actions:
    create: list[Obj] = field(default_factory=list)
    drain: list[str] = field(default_factory=list)
    probe: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)
    """The part of ``delete`` whose drain timeout passed before the engine was idle."""
    confirm: list[str] = field(default_factory=list)
    """Draining instances in their discovery wait: ask the routers whether all hold them so."""
    recheck_s: float | None = None
    """Look again after this many seconds (a drain waits for ``D`` or its next read)."""

    @property
    def busy(self) -> bool:
        return bool(self.create or self.drain or self.probe or self.delete or self.recheck_s)


def settled(inst: Obj) -> bool:
    status = inst.get("status") or {}
    gen = inst["metadata"].get("generation")
    return bool(status.get("ready")) and status.get("observedGeneration") == gen


def draining(inst: Obj) -> bool:
    return (inst["metadata"].get("annotations") or {}).get(L.ANNOTATION_DRAINING) == "true"


def drain_started(inst: Obj) -> datetime.datetime | None:
    stamp = (inst["metadata"].get("annotations") or {}).get(L.ANNOTATION_DRAIN_STARTED)
    if not stamp:
        return None
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _slot(inst: Obj) -> tuple[str, int]:
    return inst["metadata"]["labels"][L.LABEL_ROLE], int(inst["spec"]["index"])


def _drain_step(
    name: str,
    inst: Obj,
    now: datetime.datetime,
    timing: DrainTiming,
    reads: Mapping[str, IdleReads],
    acks: Mapping[str, datetime.datetime],
) -> tuple[str, float | None]:
    """``delete``, ``timeout``, ``confirm``, ``probe``, ``mark`` or ``wait``, and the seconds
    until the next step."""
    started = drain_started(inst)
    if not (inst.get("status") or {}).get("url"):
        return "delete", None
    if started is None:  # marked by hand without a start time: stamp it, count from then
        return "mark", None
    if (now - started).total_seconds() >= timing.timeout_s:
        return "timeout", None
    bound = discovery_end(started, timing, acks.get(name))
    if now < bound:
        return "confirm", min(timing.poll_s, (bound - now).total_seconds())
    read = _current(reads.get(name), bound)
    if read is not None and read.zeros >= IDLE_READS:
        return "delete", None
    since = (now - read.at).total_seconds() if read is not None else timing.poll_s
    if since >= timing.poll_s:
        return "probe", timing.poll_s
    return "wait", timing.poll_s - since


def discovery_end(
    started: datetime.datetime, timing: DrainTiming, acked: datetime.datetime | None
) -> datetime.datetime:
    """When no router replica can still pick the instance: ``D`` after the mark, or when every
    replica was seen listing it as draining, whichever is first."""
    bound = started + datetime.timedelta(seconds=timing.bound_s)
    return min(bound, acked) if acked is not None and acked >= started else bound


def _current(read: IdleReads | None, bound: datetime.datetime) -> IdleReads | None:
    """``read`` if it was taken after this drain's discovery wait (older reads say nothing)."""
    return read if read is not None and read.at >= bound else None


def count_read(
    prev: IdleReads | None, load: float | None, now: datetime.datetime, bound: datetime.datetime
) -> IdleReads:
    """The idle reads after one more read of an engine (``load`` None: unreadable) whose
    discovery wait ended at ``bound``."""
    prev = _current(prev, bound)
    zeros = (prev.zeros if prev else 0) + 1 if load == 0 else 0
    return IdleReads(zeros, now)


def _replacements(desired: dict[str, Obj], live: dict[str, Obj], acts: Actions) -> None:
    """Create missing instances, surge replacements, drain what they replaced and the surplus."""
    olds: dict[tuple[str, int], list[str]] = {}
    for name, inst in sorted(live.items()):
        if name not in desired and not draining(inst):
            olds.setdefault(_slot(inst), []).append(name)
    starting = {
        _slot(o)[0] for n, o in live.items() if n in desired and not settled(o) and not draining(o)
    }
    for name, obj in sorted(desired.items(), key=lambda kv: _slot(kv[1])):
        slot = _slot(obj)
        replaced = olds.pop(slot, [])
        if name in live:
            if settled(live[name]):
                acts.drain += replaced
            continue
        if not replaced:
            acts.create.append(obj)
        elif slot[0] not in starting:
            acts.create.append(obj)
            starting.add(slot[0])
    for names in olds.values():
        acts.drain += names


def decide(desired: dict[str, Obj], existing: dict[str, Obj], now: datetime.datetime,
           timing: DrainTiming, reads: Mapping[str, IdleReads],
           acks: Mapping[str, datetime.datetime] | None = None) -> Actions:  # fmt: skip
    acts = Actions()
    live = {n: o for n, o in existing.items() if not o["metadata"].get("deletionTimestamp")}
    _replacements(desired, live, acts)
    waits: list[float] = []
    for name, inst in sorted(live.items()):
        if not draining(inst):
            continue
        step, after = _drain_step(name, inst, now, timing, reads, acks or {})
        if step in ("delete", "timeout"):
            acts.delete.append(name)
        if step == "timeout":
            acts.timed_out.append(name)
        if step == "probe":
            acts.probe.append(name)
        if step == "confirm":
            acts.confirm.append(name)
        if step == "mark":
            acts.drain.append(name)
        if after is not None:
            waits.append(max(after, 0.0))
    if acts.drain:
        waits.append(min(timing.poll_s, timing.bound_s, timing.timeout_s))
    acts.recheck_s = min(waits) if waits else None
    return acts
