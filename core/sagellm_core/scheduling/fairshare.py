"""Fair share between users inside a priority band: least recently served user first (pure).

Each admission stamps the user with an increasing turn number; when several items tie on the
policy's order key, the one whose user was served longest ago (never served = -1) goes first.
One busy user therefore cannot crowd out others in the same band, yet an idle band is FIFO.
"""

from __future__ import annotations


class FairShare:
    def __init__(self, max_users: int = 100_000) -> None:
        self._turn = 0
        self._last: dict[str, int] = {}
        self._max_users = max_users

    def last_turn(self, user: str) -> int:
        """The turn at which ``user`` was last served, -1 if never (or forgotten)."""
        return self._last.get(user, -1)

    def served(self, user: str) -> None:
        self._turn += 1
        self._last.pop(user, None)
        self._last[user] = self._turn
        if len(self._last) > self._max_users:  # forget the longest-idle user (dict order)
            del self._last[next(iter(self._last))]
