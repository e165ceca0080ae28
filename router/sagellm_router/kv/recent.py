"""This router's own recent picks, as prompt blocks per engine with the time each was sent.

The engines' KV events lag: an engine reports a prompt's blocks only once it has admitted and
computed the prompt. Requests with the same prefix that arrive meanwhile would look uncached
everywhere; what this router itself sent an engine within the last ``window_s`` seconds bridges
that gap. Beyond the window only the events count. Keys are the prompt's character-block hashes
(``prefix_aware``'s), so recording costs no tokenizing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from sagellm_router.stats.tracker import Clock

MAX_BLOCKS = 200_000
"""Per engine: the oldest blocks go first beyond it."""


class Recent:
    def __init__(self, window_s: float, clock: Clock) -> None:
        self._window = window_s
        self._clock = clock
        self._sent: dict[str, OrderedDict[int, float]] = {}

    def record(self, url: str, hashes: Sequence[int]) -> None:
        now = self._clock()
        sent = self._sent.setdefault(url, OrderedDict())
        for h in hashes:
            sent[h] = now
            sent.move_to_end(h)
        oldest = now - self._window
        while sent and (len(sent) > MAX_BLOCKS or next(iter(sent.values())) < oldest):
            sent.popitem(last=False)

    def share(self, url: str, hashes: Sequence[int]) -> float:
        """Share of ``hashes`` (a leading run) sent to ``url`` within the window."""
        sent = self._sent.get(url)
        if not sent or not hashes:
            return 0.0
        since = self._clock() - self._window
        n = 0
        for h in hashes:
            at = sent.get(h)
            if at is None or at < since:
                break
            n += 1
        return n / len(hashes)

    def forget(self, keep: set[str]) -> None:
        for url in [u for u in self._sent if u not in keep]:
            del self._sent[url]
