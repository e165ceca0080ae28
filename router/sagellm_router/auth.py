"""Optional API keys: ``Authorization: Bearer <key>``, compared in constant time.

Keys come from a file (one per line, ``#`` comments; a mounted Kubernetes Secret) and/or an
environment variable (comma list). ``KeyReloader`` re-reads the file periodically, so a rotated
Secret takes effect without a restart. No key is ever logged, echoed in an error or exported.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Sequence

from sagellm_router.config import AuthSettings
from sagellm_router.errors import ApiError

log = logging.getLogger(__name__)


class KeyChecker:
    """Checks bearer tokens against the current set of keys (replaced by ``replace``)."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._keys = tuple(k.encode() for k in keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    @property
    def count(self) -> int:
        return len(self._keys)

    def replace(self, keys: Sequence[str]) -> None:
        self._keys = tuple(k.encode() for k in keys)

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


class KeyReloader:
    """Re-reads ``settings.api_keys_file`` every ``reload_interval_s`` into ``checker``.

    An unreadable file keeps the keys in force (a Secret volume is swapped atomically, but a
    file being edited by hand may be briefly missing) and logs the error, never the content.
    """

    def __init__(self, settings: AuthSettings, checker: KeyChecker) -> None:
        self._settings = settings
        self._checker = checker
        self._last: tuple[str, ...] | None = None

    def reload(self) -> bool:
        """Read the keys now; ``True`` if they changed."""
        try:
            keys = self._settings.load_keys()
        except OSError as exc:
            log.warning("cannot re-read the API key file; keeping %d keys: %s",
                        self._checker.count, exc.strerror)  # fmt: skip
            return False
        if keys == self._last:
            return False
        changed = self._last is not None
        self._last = keys
        self._checker.replace(keys)
        if changed:
            log.info("API keys reloaded: %d keys", len(keys))
        return changed

    async def run(self) -> None:
        """Background task: reload forever (cancelled at shutdown)."""
        while True:
            await asyncio.sleep(self._settings.reload_interval_s)
            self.reload()
