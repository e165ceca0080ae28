"""The operator-to-router contract is the pool's status, and nothing else.

A real router process watches the emulated API server. The InferencePool CRD installed there
lets any spec through (as a newer API version's spec would look to an older router), and the
pool's spec is one the router's models cannot parse; its status is complete, as the operator
writes it. The router must route by the status alone, and take its admission slots from
``status.endpoints[].maxConcurrency``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from e2e.waiting import eventually
from sagellm_core.api import labels as L
from tests.e2e_local.local_cluster import ROOT, SAGELLM, free_port, kubeconfig, process
from tests.e2e_local.local_cluster import wait_http_ok as wait_ok
from tests.kubeemu import running_emulator

pytestmark = [pytest.mark.timeout(120)]
Obj = dict[str, Any]
NS, MODEL = "default", "contract"
POOLS = f"/apis/{L.GROUP}/{L.VERSION}/namespaces/{NS}/{L.POOL_PLURAL}"
UNREADABLE_SPEC = {
    "model": "contract-v9",  # a string where the router's model expects an object
    "roles": [{"kind": "General", "replicas": 1}],
    "scheduling": "weighted-fair",
}


def _any_spec_crd() -> Obj:
    path = ROOT / "crds" / f"{L.GROUP}_{L.POOL_PLURAL}.yaml"
    crd: Obj = copy.deepcopy(yaml.safe_load(path.read_text()))
    for version in crd["spec"]["versions"]:
        props = version["schema"]["openAPIV3Schema"]["properties"]
        props["spec"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        version["additionalPrinterColumns"] = []
    return crd


def _status(engine: str, slots: int) -> Obj:
    endpoint = {"instance": "c-0", "role": "General", "url": engine, "ready": True,
                "draining": False, "maxConcurrency": slots}  # fmt: skip
    return {"phase": "Ready", "model": MODEL, "task": "generate",
            "scheduling": {"queueTimeoutMs": 60000}, "endpoints": [endpoint]}  # fmt: skip


@contextlib.asynccontextmanager
async def stack(workdir: Path) -> AsyncIterator[tuple[aiohttp.ClientSession, str, str]]:
    """Emulator with the permissive CRD, one simulator, and the router watching the emulator."""
    async with running_emulator() as emu, aiohttp.ClientSession(base_url=str(emu.url)) as api:
        crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        async with api.post(crds, json=_any_spec_crd()) as resp:
            assert resp.status == 201, await resp.text()
        config = workdir / "kubeconfig.yaml"
        config.write_text(yaml.safe_dump(kubeconfig(str(emu.url).rstrip("/"), NS)))
        port, sim_port = free_port(), free_port()
        router_yaml = workdir / "router.yaml"
        router_yaml.write_text(yaml.safe_dump({
            "server": {"host": "127.0.0.1", "port": port, "shutdown_timeout_s": 1},
            "discovery": {"type": "kubernetes", "namespaces": [NS], "kubeconfig": str(config),
                          "backoff_initial_s": 0.2},
            "health": {"probe_interval_s": 0.5}, "scrape": {"interval_s": 0.5},
        }))  # fmt: skip
        sim = [sys.executable, "-m", "sagellm_sim", "--model", MODEL, "--port", str(sim_port),
               "--host", "127.0.0.1", "--sim-profile", "tiny"]  # fmt: skip
        router = [SAGELLM, "router", "--config", str(router_yaml), "--log-level", "warning"]
        engine = f"http://127.0.0.1:{sim_port}"
        async with (
            process("sim", sim, workdir) as sim_log,
            process("router", router, workdir) as log,
        ):
            await wait_ok(f"{engine}/health", sim_log)
            await wait_ok(f"http://127.0.0.1:{port}/health", log)
            yield api, f"http://127.0.0.1:{port}", engine


async def _create_pool(api: aiohttp.ClientSession, status: Obj) -> None:
    pool = {"apiVersion": L.API_VERSION, "kind": L.POOL_KIND,
            "metadata": {"name": "c", "namespace": NS}, "spec": UNREADABLE_SPEC}  # fmt: skip
    async with api.post(POOLS, json=pool) as resp:
        assert resp.status == 201, await resp.text()
    merge = {"Content-Type": "application/merge-patch+json"}
    async with api.patch(f"{POOLS}/c/status", json={"status": status}, headers=merge) as resp:
        assert resp.status == 200, await resp.text()


async def _listed(router: str) -> bool:
    async with aiohttp.ClientSession() as http, http.get(f"{router}/v1/models") as resp:
        return resp.status == 200 and MODEL in {m["id"] for m in (await resp.json())["data"]}


async def _queued(router: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"{router}/metrics") as resp:
        text = await resp.text()
    prefix = "sagellm_router_queued_requests{"
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(prefix) and f'pool="{NS}/c"' in line)  # fmt: skip


async def test_a_pool_with_an_unreadable_spec_routes_by_its_status(tmp_path: Path) -> None:
    async with stack(tmp_path) as (api, router, _engine):
        await _create_pool(api, _status(_engine, slots=1))
        await eventually(lambda: _listed(router), f"the router to list {MODEL}")
        body = {"model": MODEL, "prompt": "hello", "max_tokens": 64}
        async with aiohttp.ClientSession() as http:
            # One slot (status.endpoints[].maxConcurrency): of two requests one runs, one waits.
            first = asyncio.create_task(http.post(f"{router}/v1/completions", json=body))
            second = asyncio.create_task(http.post(f"{router}/v1/completions", json=body))
            await eventually(lambda: _queued(router), "a request to wait for the only slot")
            for task in (first, second):
                response = await task
                assert response.status == 200, await response.text()
                assert response.headers["X-Sagellm-Instance"] == "c-0"
