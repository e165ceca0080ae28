"""The discovery interface and the router's current table of pools."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Protocol

from sagellm_router.types import Endpoint, PoolSnapshot


class Discovery(Protocol):
    """A source of pool snapshots.

    ``updates()`` yields the complete set of pools whenever it changes (the first item as soon as
    the source is read). It runs until cancelled and must never block the event loop.
    """

    def updates(self) -> AsyncIterator[tuple[PoolSnapshot, ...]]: ...


class PoolTable:
    """The pools currently known, indexed by model name (immutable snapshots, swapped whole)."""

    def __init__(self, pools: Iterable[PoolSnapshot] = ()) -> None:
        self.replace(pools)

    def replace(self, pools: Iterable[PoolSnapshot]) -> None:
        self.pools: tuple[PoolSnapshot, ...] = tuple(sorted(pools, key=lambda p: p.name))
        by_model: dict[str, list[PoolSnapshot]] = {}
        for pool in self.pools:
            by_model.setdefault(pool.model, []).append(pool)
        self._by_model = {model: tuple(pools) for model, pools in by_model.items()}
        self._by_name = {pool.name: pool for pool in self.pools}

    def get(self, name: str) -> PoolSnapshot | None:
        return self._by_name.get(name)

    def for_model(self, model: str) -> tuple[PoolSnapshot, ...]:
        return self._by_model.get(model, ())

    def models(self) -> list[str]:
        return sorted(self._by_model)

    def endpoints(self) -> list[Endpoint]:
        seen: dict[str, Endpoint] = {}
        for pool in self.pools:
            for endpoint in pool.endpoints:
                seen.setdefault(endpoint.url, endpoint)
        return list(seen.values())

    def urls(self, pool_name: str) -> set[str]:
        return {e.url for p in self.pools if p.name == pool_name for e in p.endpoints}
