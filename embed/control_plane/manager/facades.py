"""``manager.router`` and ``manager.load_balancer``: the seed documents' handles on the
routing strategy, backed by the router's own strategies and live loads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from control_plane.manager.convert import endpoint_of
from control_plane.types import ExecutionInstance

if TYPE_CHECKING:
    from control_plane.manager.manager import ControlPlaneManager


class RequestRouter:
    """``manager.router.routing_strategy = "locality"`` switches every pool's strategy now."""

    def __init__(self, manager: ControlPlaneManager) -> None:
        self._manager = manager

    @property
    def routing_strategy(self) -> str:
        return self._manager.routing_strategy

    @routing_strategy.setter
    def routing_strategy(self, name: str) -> None:
        self._manager.routing_strategy = name


@dataclass(frozen=True)
class _Probe:
    """A request stand-in for strategies that read the prompt or session (none here)."""

    prompt_text: str = ""
    session_key: str | None = None


class LoadBalancer:
    """``select_instance(instances, algorithm=...)``: the instance that routing strategy would
    pick now (healthy, available instances only; None when there is none)."""

    def __init__(self, manager: ControlPlaneManager) -> None:
        self._manager = manager

    def select_instance(
        self,
        instances: Sequence[ExecutionInstance],
        algorithm: str | None = None,
        *,
        user_id: str | None = None,
        prompt: str = "",
    ) -> ExecutionInstance | None:
        manager = self._manager
        state = manager.state
        name = algorithm or manager.routing_strategy
        if not state.strategies.knows(name):
            known = ", ".join(state.strategies.names)
            raise ValueError(f"unknown routing algorithm {name!r}; known: {known}")
        by_url = {
            i.url: i for i in instances if i.is_available and i.url not in state.health.ejected
        }
        if not by_url:
            return None
        assert state.loads is not None
        endpoints = [endpoint_of(i) for i in by_url.values()]
        strategy = state.strategies.get("load_balancer", name)
        chosen = strategy.pick(_Probe(prompt, user_id), endpoints, state.loads)
        return by_url[chosen.url]
