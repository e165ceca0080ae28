"""The shared scenarios, in order, against the kind cluster e2e/run.sh prepared.

Each step builds on the previous one (run with -x): deploy the simulator pool, serve OpenAI
traffic, check metrics and status, scale out and in, roll an update under traffic, delete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e import scenarios
from e2e.kube import KindCluster

SAMPLE = Path(__file__).resolve().parents[1] / "crds" / "samples" / "simulator-pool.yaml"
pytestmark = pytest.mark.timeout(900)


def pool_manifest() -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())
    return manifest


NAME = pool_manifest()["metadata"]["name"]
MODEL = pool_manifest()["spec"]["model"]["name"]


async def test_pool_becomes_ready(cluster: KindCluster) -> None:
    await scenarios.deploy_pool(cluster, pool_manifest())


async def test_router_serves_openai_traffic(cluster: KindCluster) -> None:
    await scenarios.serve_openai(cluster, MODEL)


async def test_metrics_and_status_agree(cluster: KindCluster) -> None:
    await scenarios.check_metrics_and_status(cluster, NAME, MODEL)


async def test_scale_out_and_in(cluster: KindCluster) -> None:
    await scenarios.scale(cluster, NAME, MODEL, 3)
    await scenarios.scale(cluster, NAME, MODEL, 2)


async def test_scale_under_traffic_fails_no_request(cluster: KindCluster) -> None:
    await scenarios.scale_under_traffic(cluster, NAME, MODEL, [3, 2])


async def test_rolling_update_keeps_serving(cluster: KindCluster) -> None:
    args = pool_manifest()["spec"]["engine"].get("extraArgs", [])
    patch = {"engine": {"extraArgs": [*args, "--sim-seed", "7"]}}
    traffic = await scenarios.rolling_update_under_traffic(cluster, NAME, MODEL, patch)
    assert len(traffic.statuses) > 10, "too little traffic flowed to prove anything"


async def test_delete_removes_everything(cluster: KindCluster) -> None:
    await scenarios.delete_pool(cluster, NAME, MODEL)
