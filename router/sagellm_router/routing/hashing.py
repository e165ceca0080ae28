"""Hashing helpers: a fast 64-bit hash and rendezvous (highest-random-weight) ordering.

Rendezvous hashing is consistent: removing one endpoint only moves the keys it owned, and every
router replica computes the same order from the same inputs without sharing state.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import blake2b

from sagellm_router.types import Endpoint


def hash64(data: bytes) -> int:
    """A stable 64-bit hash (not Python's per-process salted ``hash``)."""
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "little")


def rendezvous_order(key: str, candidates: Sequence[Endpoint]) -> list[Endpoint]:
    """Candidates ordered by their rendezvous score for ``key`` (best first)."""
    key_bytes = key.encode("utf-8", "surrogatepass")
    return sorted(
        candidates,
        key=lambda e: hash64(key_bytes + b"\x00" + e.url.encode()),
        reverse=True,
    )
