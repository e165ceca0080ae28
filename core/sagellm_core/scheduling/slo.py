"""SLO outcome accounting: was an objective met, and attainment over a sliding window (pure)."""

from __future__ import annotations

from collections import deque

from sagellm_core.scheduling.metadata import RequestMetadata


def slo_met(meta: RequestMetadata, first_token_s: float | None, done_s: float) -> bool | None:
    """True/False for a request with an SLO, None without one.

    ``first_token_s`` and ``done_s`` are absolute times; a missing first token (the request
    failed before streaming) counts as a miss of a TTFT objective.
    """
    if not meta.has_slo:
        return None
    ttft_due = meta.ttft_due_s
    if ttft_due is not None and (first_token_s is None or first_token_s > ttft_due):
        return False
    deadline = meta.deadline_s
    return deadline is None or done_s <= deadline


class SloWindow:
    """Counts met/missed objectives in total and over the last ``window_s`` seconds."""

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self._events: deque[tuple[float, bool]] = deque()
        self._met_in_window = 0
        self.attained = 0
        self.violated = 0

    def record(self, met: bool, now: float) -> None:
        self._events.append((now, met))
        if met:
            self.attained += 1
            self._met_in_window += 1
        else:
            self.violated += 1

    def attainment(self, now: float) -> float | None:
        """Share of objectives met in the window; None when nothing finished in it."""
        events = self._events
        while events and events[0][0] < now - self.window_s:
            if events.popleft()[1]:
                self._met_in_window -= 1
        if not events:
            return None
        return self._met_in_window / len(events)
