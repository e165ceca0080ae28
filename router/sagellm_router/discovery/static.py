"""Static discovery: pools listed in the router's config file, re-read when the file changes.

The file's modification time (and size) is polled every ``poll_interval_s``; a file that no
longer parses is reported in the log and the last good pools stay in force.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from sagellm_router.config import (
    ConfigError,
    StaticDiscoverySettings,
    load_settings,
)
from sagellm_router.types import PoolSnapshot

log = logging.getLogger(__name__)


def snapshots_of(settings: StaticDiscoverySettings) -> tuple[PoolSnapshot, ...]:
    """The file's pools; their position is the tie-break of the model-name ownership rule."""
    return tuple(pool.snapshot(order=i) for i, pool in enumerate(settings.pools))


class StaticDiscovery:
    """Yields the pools of a static config, then again whenever the file changes."""

    def __init__(self, settings: StaticDiscoverySettings, path: str | Path | None = None) -> None:
        self._settings = settings
        self._path = Path(path) if path is not None else None

    def _stamp(self) -> tuple[int, int] | None:
        assert self._path is not None
        try:
            stat = self._path.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    async def updates(self) -> AsyncIterator[tuple[PoolSnapshot, ...]]:
        current = snapshots_of(self._settings)
        yield current
        if self._path is None:
            return
        stamp = self._stamp()
        while True:
            await asyncio.sleep(self._settings.poll_interval_s)
            new_stamp = self._stamp()
            if new_stamp == stamp or new_stamp is None:
                continue
            stamp = new_stamp
            reloaded = self._reload()
            if reloaded is not None and reloaded != current:
                current = reloaded
                log.info("static pools reloaded", extra={"pools": len(current)})
                yield current

    def _reload(self) -> tuple[PoolSnapshot, ...] | None:
        assert self._path is not None
        try:
            discovery = load_settings(self._path).discovery
        except ConfigError as exc:
            log.error("config reload failed; keeping previous pools: %s", exc)
            return None
        if not isinstance(discovery, StaticDiscoverySettings):
            log.error("config reload changed discovery type; restart the router to apply it")
            return None
        return snapshots_of(discovery)
