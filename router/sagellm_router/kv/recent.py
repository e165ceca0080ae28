"""This router's own recent picks, as prompt blocks per engine with the time each was sent.

The engines' KV events lag: an engine reports a prompt's blocks only once it has admitted and
computed the prompt. Requests with the same prefix that arrive meanwhile would look uncached
everywhere; what this router itself sent an engine within the last ``window_s`` seconds bridges
that gap. Beyond the window only the events count. Keys are the prompt's chained byte-block
hashes (``keys``), so recording costs no tokenizing, and a block's key stands for the whole
prefix up to it: the leading run a candidate holds is found by bisection. The keys are the same
in every process (zlib checksums, not Python's salted ``hash``), so router replicas can share
their picks (``sagellm_router.kv.peers``).
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Sequence

from sagellm_router.stats.tracker import Clock

MAX_BLOCKS = 200_000
"""Per engine: the oldest blocks go first beyond it."""


def keys(text: str, block_bytes: int, limit: int) -> list[int]:
    """Keys of the leading full ``block_bytes``-byte blocks of ``text``'s UTF-8 (at most
    ``limit``): each is the CRC-32 and Adler-32 of the whole prefix up to its block's end, as one
    64-bit int. Both checksums run on from block to block (zlib's ``value`` argument), and they
    are defined by zlib, not by Python, so every router process and version computes the same."""
    data = text.encode("utf-8", "surrogatepass")
    crc32, adler32, out = zlib.crc32, zlib.adler32, []
    crc, adler = 0, 1
    for start in range(0, min(len(data), block_bytes * limit) - block_bytes + 1, block_bytes):
        block = data[start : start + block_bytes]
        crc, adler = crc32(block, crc), adler32(block, adler)
        out.append(crc << 32 | adler)
    return out


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
        return self.shares(hashes).get(url, 0.0)

    def shares(self, hashes: Sequence[int]) -> dict[str, float]:
        """Per engine, the share of ``hashes`` (chained: each implies those before it) sent to
        it within the window: its longest fresh leading run, found by bisection."""
        if not hashes:
            return {}
        since = self._clock() - self._window
        out: dict[str, float] = {}
        first = hashes[0]
        for url, sent in self._sent.items():
            at = sent.get(first)
            if at is None or at < since:  # most engines never got this prefix: one lookup
                continue
            lo, hi = 1, len(hashes)  # hashes[:lo] are fresh, hashes[hi:] are not
            while lo < hi:
                mid = (lo + hi) // 2
                at = sent.get(hashes[mid])
                if at is not None and at >= since:
                    lo = mid + 1
                else:
                    hi = mid
            if lo:
                out[url] = lo / len(hashes)
        return out

    def forget(self, keep: set[str]) -> None:
        for url in [u for u in self._sent if u not in keep]:
            del self._sent[url]
