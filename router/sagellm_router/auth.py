"""Optional API keys on /v1/*: ``Authorization: Bearer <key>``, compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from sagellm_router.errors import ApiError


class KeyChecker:
    """Checks bearer tokens against a fixed set of keys; never logs or echoes a key."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._keys = tuple(k.encode() for k in keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def check(self, authorization: str | None) -> None:
        """Raise a 401 ApiError unless the header carries one of the keys."""
        if not self._keys:
            return
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'")
        candidate = token.strip().encode()
        matched = False
        for key in self._keys:  # compare against every key so timing does not reveal which
            matched |= hmac.compare_digest(candidate, key)
        if not matched:
            raise ApiError(401, "invalid API key")
