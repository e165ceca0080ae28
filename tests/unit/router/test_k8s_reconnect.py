"""The kubernetes discovery loop: 410 re-lists at once, other errors back off, watches resume."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from sagellm_router.config import KubernetesDiscoverySettings
from sagellm_router.discovery.kubernetes import KubernetesDiscovery


def obj(name: str, rv: str, draining: bool = False) -> dict[str, Any]:
    ep = {
        "instance": "i",
        "role": "General",
        "url": "http://a:1",
        "ready": True,
        "draining": draining,
    }
    return {
        "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv},
        "status": {"model": "m", "endpoints": [ep]},
    }


class FakeWatchResponse:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.lines = [json.dumps(e).encode() + b"\n" for e in events]
        self.released = False

    @property
    def content(self) -> AsyncIterator[bytes]:
        async def gen() -> AsyncIterator[bytes]:
            for line in self.lines:
                yield line

        return gen()

    def release(self) -> None:
        self.released = True


class FakeApi:
    """Scripted API: each call pops the next scripted result (a value or an exception)."""

    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        result = self.script.pop(0)
        if isinstance(result, BaseException):
            raise result
        return result


class FakeClient:
    async def close(self) -> None:
        pass


async def test_relist_on_410_backoff_on_errors_and_resume() -> None:
    listing = {"metadata": {"resourceVersion": "5"}, "items": [obj("a", "4")]}
    api = FakeApi([
        listing,
        FakeWatchResponse([{"type": "ERROR", "object": {"code": 410, "message": "gone"}}]),
        listing,
        aiohttp.ClientConnectionError("reset"),
        listing,
        FakeWatchResponse([{"type": "MODIFIED", "object": obj("a", "9", draining=True)}]),
        FakeWatchResponse([]),  # a watch that simply ends is resumed from rv 9
        FakeWatchResponse([{"type": "DELETED", "object": obj("a", "11")}]),
    ])  # fmt: skip
    settings = KubernetesDiscoverySettings(
        type="kubernetes", namespace="ns", backoff_initial_s=0.001
    )

    async def make_client() -> FakeClient:
        return FakeClient()

    discovery = KubernetesDiscovery(settings, api_client=make_client)
    discovery._list_call = lambda _api: (api, {"namespace": "ns"})  # type: ignore[method-assign]
    updates = discovery.updates()
    snapshots = [await anext(updates) for _ in range(5)]
    await updates.aclose()
    assert [len(s) for s in snapshots] == [1, 1, 1, 1, 0]
    assert snapshots[3][0].endpoints[0].draining
    watches = [c for c in api.calls if c.get("watch") == "true"]
    assert [c.get("resource_version") for c in watches] == ["5", "5", "5", "9", "9"]
    lists = [c for c in api.calls if "watch" not in c]
    assert len(lists) == 3
