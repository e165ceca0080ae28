"""Counters of one admission queue: admissions, rejections by kind, waits per priority, SLOs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class WaitStats:
    count: int = 0
    total_s: float = 0.0
    max_s: float = 0.0

    def add(self, waited_s: float) -> None:
        self.count += 1
        self.total_s += waited_s
        self.max_s = max(self.max_s, waited_s)

    def as_dict(self) -> dict[str, float]:
        mean = self.total_s / self.count if self.count else 0.0
        return {"count": self.count, "mean_s": mean, "max_s": self.max_s}


@dataclass(slots=True)
class QueueStats:
    admitted: int = 0
    completed: int = 0
    cancelled: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    waits: dict[str, WaitStats] = field(default_factory=dict)

    def waited(self, priority: str, waited_s: float) -> None:
        stats = self.waits.get(priority)
        if stats is None:
            stats = self.waits[priority] = WaitStats()
        stats.add(waited_s)
