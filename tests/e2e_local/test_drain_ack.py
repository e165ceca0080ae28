"""A drain ends its discovery wait when every router replica lists the instance as draining.

The local stack with a discovery bound ``D`` of 120 s, far longer than this test may wait: the
operator finds the router through ``--router-url`` and reads the draining instances on its
``/metrics``. Scaling 2 → 1 under long streams, the removed instance must be gone (drained: its
engine idle, every stream finished) long before ``D`` would have allowed it. Without the
router's acknowledgement (no ``--router-url``: no router to ask) the instance waits out ``D``
and this test times out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from e2e import scenarios
from e2e.scenarios import INSTANCES, POOL_LABEL, POOLS
from e2e.traffic import LongStreams, check_streams
from e2e.waiting import eventually
from tests.e2e_local.local_cluster import LocalCluster, reported_cluster

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(300)]

NAME, MODEL = "ack", "ack-model"
BOUND_S = 120
OPERATOR = ("--discovery-bound", str(BOUND_S), "--router-url", "{router}")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalCluster]:
    async with reported_cluster(tmp_path_factory.mktemp("drain_ack"), operator_args=OPERATOR) as c:
        yield c


def manifest(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "sagellm.io/v1alpha1", "kind": "InferencePool", "metadata": {"name": NAME},
        "spec": {
            "model": {"name": MODEL, "source": "sim/tiny", "parameters": 1, "maxModelLen": 4096},
            "engine": {"kind": "Simulator", "gpuMemoryGiB": 24,
                       "extraArgs": ["--sim-time-scale", "1.0"]},
            "roles": {"general": {"replicas": replicas}},
            "scheduling": {"routing": "round_robin"},
            "lifecycle": {"drainTimeoutSeconds": 2 * BOUND_S},
        },
    }  # fmt: skip


async def instances(cluster: LocalCluster) -> set[str]:
    return {i["metadata"]["name"] for i in await cluster.list(INSTANCES, f"{POOL_LABEL}={NAME}")}


async def test_scale_in_ends_when_every_router_acknowledges(cluster: LocalCluster) -> None:
    await scenarios.deploy_pool(cluster, manifest(2), timeout_s=90)
    await scenarios.serve_openai(cluster, MODEL, timeout_s=30)
    before = await instances(cluster)
    streams = LongStreams(cluster.router_url, MODEL, count=6, max_tokens=800)
    runner = asyncio.create_task(streams.run())
    await asyncio.wait_for(streams.all_streaming.wait(), 60)
    await cluster.patch(POOLS, NAME, {"spec": {"roles": {"general": {"replicas": 1}}}})

    async def one_left() -> bool:
        return len(await instances(cluster)) == 1

    # Well inside D: only the routers' acknowledgement can end the wait this early.
    await eventually(one_left, "the drained instance to be deleted", BOUND_S / 2, 0.2)
    await runner
    assert (await instances(cluster)) < before
    check_streams(streams, "scale 2 -> 1 with acknowledged drain", min_seconds=5)
