"""The shared e2e scenarios (``e2e/scenarios.py``) against the local stack, in order.

Emulated API + real operator + fake kubelet running simulator processes + real router in
``kubernetes`` discovery mode. Each step builds on the previous one, as in ``e2e/test_kind.py``:
deploy ``crds/samples/simulator-pool.yaml``, serve OpenAI traffic (also through the ``openai``
client), check metrics and status, scale 2 -> 3 -> 2 under traffic with no failed request, roll
an update under traffic, delete the pool and see everything gone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from e2e import scenarios
from tests.e2e_local.local_cluster import LocalCluster

SAMPLE = Path(__file__).resolve().parents[2] / "crds" / "samples" / "simulator-pool.yaml"
MANIFEST: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())
NAME = MANIFEST["metadata"]["name"]
MODEL = MANIFEST["spec"]["model"]["name"]
pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]


async def test_pool_becomes_ready(cluster: LocalCluster) -> None:
    pool = await scenarios.deploy_pool(cluster, MANIFEST, timeout_s=60)
    urls = [e["url"] for e in pool["status"]["endpoints"]]
    assert all(u.startswith("http://127.") and u.endswith(":8000") for u in urls), urls
    pods = await cluster.list("pods", f"{scenarios.POOL_LABEL}={NAME}")
    container = pods[0]["spec"]["containers"][0]
    assert container["command"] == ["sagellm", "sim"]
    assert container["args"][container["args"].index("--sim-time-scale") + 1] == "0.05"


async def test_router_serves_openai_traffic(cluster: LocalCluster) -> None:
    await scenarios.serve_openai(cluster, MODEL, timeout_s=30)
    client = openai.AsyncOpenAI(base_url=f"{cluster.router_url}/v1", api_key="unused")
    try:
        reply = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hello"}], max_tokens=8
        )
        assert reply.choices[0].message.content
        assert reply.model == MODEL
        stream = await client.completions.create(
            model=MODEL, prompt="once upon a time", max_tokens=8, stream=True
        )
        texts = [chunk.choices[0].text async for chunk in stream if chunk.choices]
        assert "".join(texts)
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(
                model="no-such-model", messages=[{"role": "user", "content": "hi"}]
            )
    finally:
        await client.close()


async def test_metrics_and_status_agree(cluster: LocalCluster) -> None:
    await scenarios.check_metrics_and_status(cluster, NAME, MODEL)


async def test_scale_out_and_in_under_traffic_loses_nothing(cluster: LocalCluster) -> None:
    traffic = await scenarios.scale_under_traffic(cluster, NAME, MODEL, [3, 2], timeout_s=60)
    assert len(traffic.statuses) > 10, "too little traffic flowed to prove anything"
    await scenarios.serve_openai(cluster, MODEL, timeout_s=30)


async def test_rolling_update_keeps_serving(cluster: LocalCluster) -> None:
    args = MANIFEST["spec"]["engine"].get("extraArgs", [])
    patch = {"engine": {"extraArgs": [*args, "--sim-seed", "7"]}}
    traffic = await scenarios.rolling_update_under_traffic(cluster, NAME, MODEL, patch, 90)
    assert len(traffic.statuses) > 10, "too little traffic flowed to prove anything"


async def test_delete_removes_everything(cluster: LocalCluster) -> None:
    await scenarios.delete_pool(cluster, NAME, MODEL, timeout_s=60)
