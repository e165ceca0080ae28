"""The manager's running parts: the router's services (health checks, ``/metrics`` scraping,
upstream connections) and the in-process engines it started."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

from control_plane.manager.local import make_local, shutdown
from control_plane.types import ExecutionInstance
from sagellm_router.inprocess.adapter import LocalEngine
from sagellm_router.services import CoreServices
from sagellm_router.state import RouterState
from sagellm_router.types import PoolSnapshot


class _NoDiscovery:
    """Pools come from ``register_instance``; this source never publishes."""

    async def updates(self) -> AsyncIterator[tuple[PoolSnapshot, ...]]:
        await asyncio.Event().wait()
        yield ()


class Engines:
    def __init__(self, state: RouterState) -> None:
        self._state = state
        self._services: CoreServices | None = None
        self._local: dict[str, LocalEngine] = {}
        self._owned: set[str] = set()

    @property
    def upstream(self) -> Any:
        assert self._services is not None, "the manager is not started"
        return self._services.upstream

    def local(self, url: str) -> LocalEngine:
        return self._local[url]

    def start_local(self, instance: ExecutionInstance) -> None:
        if instance.url in self._local:
            return
        local, owned = make_local(instance)
        self._local[instance.url] = local
        self._count_with_tokenizer(local.model_name)
        if owned:
            self._owned.add(instance.url)

    def _count_with_tokenizer(self, model: str) -> None:
        """Prompts of ``model`` are counted by the tokenizer of one of its in-process engines,
        else by core's estimate."""
        engines = (e for e in self._local.values() if e.model_name == model)
        counter = next((c for e in engines if (c := e.token_counter()) is not None), None)
        if counter is None:
            self._state.tokenizers.pop(model, None)
        else:
            self._state.tokenizers[model] = counter

    def drop_local(self, instance: ExecutionInstance) -> asyncio.Task[None] | None:
        """Forget the instance's in-process engine; a task that stops it if we started it."""
        local = self._local.pop(instance.url, None)
        if local is not None:
            self._count_with_tokenizer(local.model_name)
        if local is None or instance.url not in self._owned:
            return None
        self._owned.discard(instance.url)
        return asyncio.ensure_future(shutdown(local))

    async def start(self, instances: Iterable[ExecutionInstance]) -> None:
        for instance in instances:
            if instance.executor == "inprocess":
                self.start_local(instance)
        self._services = CoreServices(self._state, _NoDiscovery(), self._local)
        await self._services.start()

    async def stop(self) -> None:
        if self._services is not None:
            await self._services.stop()
            self._services = None
        for url in sorted(self._owned):
            await shutdown(self._local.pop(url))
        self._owned.clear()
        self._local.clear()
        self._state.tokenizers.clear()
