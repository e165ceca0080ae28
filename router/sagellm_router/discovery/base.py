"""The discovery interface and the router's current table of pools."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from typing import Protocol

from sagellm_core.ownership import Claim, resolve
from sagellm_router.types import Endpoint, PoolSnapshot

log = logging.getLogger(__name__)


class Discovery(Protocol):
    """A source of pool snapshots.

    ``updates()`` yields the complete set of pools whenever it changes (the first item as soon as
    the source is read). It runs until cancelled and must never block the event loop.
    """

    def updates(self) -> AsyncIterator[tuple[PoolSnapshot, ...]]: ...


def claim(pool: PoolSnapshot) -> Claim:
    return Claim(pool.name, pool.model, pool.created, pool.order)


class PoolTable:
    """The pools that serve, indexed by model name (immutable snapshots, swapped whole).

    Every source's pools pass through the model-name ownership rule here
    (``sagellm_core.ownership``): a pool that claims a name another pool owns is kept out of the
    table, so nothing is routed to it; ``rejected`` maps it to the owner.
    """

    def __init__(self, pools: Iterable[PoolSnapshot] = ()) -> None:
        self.rejected: dict[str, str] = {}
        self.replace(pools)

    def replace(self, pools: Iterable[PoolSnapshot]) -> None:
        offered = list(pools)
        verdict = resolve(claim(p) for p in offered)
        for loser, owner in verdict.conflicts.items():
            if self.rejected.get(loser) != owner:
                log.warning(
                    "pool %s is not accepted: its model name is owned by pool %s", loser, owner
                )
        self.rejected = dict(verdict.conflicts)
        accepted = (p for p in offered if verdict.accepted(p.name))
        self.pools: tuple[PoolSnapshot, ...] = tuple(sorted(accepted, key=lambda p: p.name))
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
