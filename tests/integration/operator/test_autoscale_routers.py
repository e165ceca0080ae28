"""The autoscaler's edges: router pods found by label and their demand pages summed over real
HTTP; the engines' own load when no router reports the pool."""

from __future__ import annotations

import datetime
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sagellm_operator.metrics import Metrics
from sagellm_operator.reconcile.autoscaler import autoscale_pool
from sagellm_operator.routers import draining_everywhere, find_routers, read_demand
from sagellm_operator.settings import AutoscalerSettings, OperatorSettings

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
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


def page_server(text: str) -> TestServer:
    app = web.Application()

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=text)

    app.router.add_get("/metrics", metrics)
    return TestServer(app, host="127.0.0.1")


DRAINING_A = 'sagellm_router_draining_endpoint{pool="ns/p",instance="a"} 1.0\n'
DRAINING_AB = DRAINING_A + 'sagellm_router_draining_endpoint{pool="ns/p",instance="b"} 1.0\n'
OTHER_POOL = 'sagellm_router_draining_endpoint{pool="ns/q",instance="a"} 1.0\n'


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("pages", "down", "acknowledged"),
    [
        ((DRAINING_AB, DRAINING_A), False, {"a"}),  # only what every replica lists
        ((DRAINING_AB, DRAINING_AB), False, {"a", "b"}),
        ((DRAINING_AB, OTHER_POOL), False, set()),  # another pool's instance of that name
        ((DRAINING_AB,), True, set()),  # a replica that does not answer may still pick it
        ((), False, set()),  # no router to ask: only D ends the wait
    ],
)
async def test_a_drain_is_acknowledged_only_by_every_router(
    pages: tuple[str, ...], down: bool, acknowledged: set[str]
) -> None:
    servers = [page_server(text) for text in pages]
    for server in servers:
        await server.start_server()
    try:
        urls = [f"http://127.0.0.1:{s.port}" for s in servers]
        urls += ["http://127.0.0.1:1"] if down else []
        assert await draining_everywhere(urls, "ns/p") == acknowledged
    finally:
        for server in servers:
            await server.close()


@pytest.mark.asyncio
async def test_fixed_router_urls_skip_the_pod_lookup() -> None:
    conf = AutoscalerSettings(router_urls=("http://127.0.0.1:9",))
    kube = Kube([])
    ctx = SimpleNamespace(settings=OperatorSettings(autoscaler=conf), kube=kube)
    assert await find_routers(ctx) == ["http://127.0.0.1:9"]  # type: ignore[arg-type]
    assert kube.asked == []


class Recorder(Kube):
    def __init__(self) -> None:
        super().__init__([])
        self.patches: list[tuple[str, dict[str, Any], bool]] = []
        self.events: list[tuple[str, str]] = []

    async def patch(self, plural: str, ns: str, name: str, body: Any, status: bool = False) -> None:
        self.patches.append((name, body, status))

    def post(self, obj: Any, kind: str, reason: str, message: str) -> None:
        self.events.append((reason, message))


@pytest.mark.asyncio
async def test_without_router_demand_the_engines_metrics_decide() -> None:
    pool = {
        "apiVersion": "sagellm.io/v1alpha1", "kind": "InferencePool",
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"roles": {"general": {"replicas": 1}},
                 "autoscaling": {"enabled": True, "targetQueueDepthPerReplica": 2,
                                 "general": {"minReplicas": 1, "maxReplicas": 4}}},
        "status": {"phase": "Ready", "endpoints": [
            {"instance": "p-general-0", "role": "General", "url": "http://e0", "ready": True},
            {"instance": "p-general-1", "role": "General", "url": "http://e1", "ready": False},
        ]},
    }  # fmt: skip
    asked: list[str] = []

    async def engine_load(url: str) -> float:
        asked.append(url)
        return 6.0  # running + waiting on the engine's own /metrics

    kube = Recorder()
    ctx = SimpleNamespace(kube=kube, engine_load=engine_load, clock=lambda: NOW,
                          metrics=Metrics(), events=kube)  # fmt: skip
    await autoscale_pool(ctx, pool, {}, {})  # type: ignore[arg-type]
    assert asked == ["http://e0"]  # ready endpoints only
    spec_patch, status_patch = kube.patches
    assert spec_patch == ("p", {"spec": {"roles": {"general": {"replicas": 3}}}}, False)
    (entry,) = status_patch[1]["status"]["autoscaling"]["roles"]
    assert (entry["source"], entry["replicas"]) == ("engines", 3)
    assert kube.events[0][0] == "ScaledUp"
    assert "from engines" in kube.events[0][1]
