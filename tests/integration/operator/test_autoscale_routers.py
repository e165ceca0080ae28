"""The autoscaler finds router pods by label and sums their demand pages over real HTTP."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sagellm_operator.reconcile.autoscaler import find_routers
from sagellm_operator.routers import read_demand
from sagellm_operator.settings import AutoscalerSettings, OperatorSettings

PAGE = """sagellm_router_demand_queued_requests{pool="ns/p"} 2.0
sagellm_router_demand_in_flight_requests{pool="ns/p",role="general"} 3.0
"""


class Kube:
    def __init__(self, pods: list[dict[str, Any]]) -> None:
        self.pods = pods
        self.asked: list[tuple[str, str]] = []

    async def list_pods(self, ns: str, selector: str) -> list[dict[str, Any]]:
        self.asked.append((ns, selector))
        return self.pods


def router_pod(name: str, ip: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"phase": "Running", "podIP": ip}}


@pytest.mark.asyncio
async def test_router_pods_by_label_are_read_and_summed() -> None:
    app = web.Application()

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=PAGE)

    app.router.add_get("/metrics", metrics)
    async with TestServer(app, host="127.0.0.1") as server:
        conf = AutoscalerSettings(router_namespace="gw", router_selector="app=r",
                                  router_port=server.port)  # fmt: skip
        kube = Kube([router_pod("a", "127.0.0.1"), router_pod("b", "127.0.0.1")])
        ctx = SimpleNamespace(settings=OperatorSettings(autoscaler=conf), kube=kube)
        urls = await find_routers(ctx)  # type: ignore[arg-type]
        assert kube.asked == [("gw", "app=r")]
        demand = await read_demand([*urls, "http://127.0.0.1:1"])  # one router down
    mine = demand["ns/p"]
    assert (mine.routers, mine.queued, mine.in_flight) == (2, 4.0, {"general": 6.0})


@pytest.mark.asyncio
async def test_fixed_router_urls_skip_the_pod_lookup() -> None:
    conf = AutoscalerSettings(router_urls=("http://127.0.0.1:9",))
    kube = Kube([])
    ctx = SimpleNamespace(settings=OperatorSettings(autoscaler=conf), kube=kube)
    assert await find_routers(ctx) == ["http://127.0.0.1:9"]  # type: ignore[arg-type]
    assert kube.asked == []
