"""A tenant cannot capture another tenant's model name (the Gateway API conflict rule).

The stack as the chart runs it in cluster scope: the emulated API, the real operator and router
processes serving an explicit allow-list of two namespaces, and a fake kubelet running one real
simulator per pod. The victim's pool ``tenant-a/chat`` serves model ``shared``; a minute later
``a-tenant-b/evil`` claims the same name. ``a-tenant-b/evil`` sorts first by name, which is what
the router used to pick, so without the ownership rule it would take the traffic.
"""

from __future__ import annotations

import contextlib
import datetime
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from e2e.waiting import eventually
from sagellm_core.api import labels as L
from tests.e2e_local.local_cluster import (
    ROOT,
    SAGELLM,
    free_port,
    kubeconfig,
    process,
    wait_http_ok,
)
from tests.kubeemu import FakeKubelet, running_emulator
from tests.kubeemu.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
VICTIM, ATTACKER = ("tenant-a", "chat"), ("a-tenant-b", "evil")
MODEL = "shared"
REQUESTS = 12
Obj = dict[str, Any]


class SteppedClock:
    """The emulator's clock: creation timestamps a minute apart, whatever the machine's speed."""

    def __init__(self) -> None:
        self.now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += datetime.timedelta(seconds=seconds)


def pool(namespace: str, name: str) -> Obj:
    return {
        "apiVersion": L.API_VERSION, "kind": L.POOL_KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"model": {"name": MODEL, "source": "sim/tiny", "parameters": 1,
                           "maxModelLen": 4096},
                 "engine": {"kind": "Simulator", "extraArgs": ["--sim-time-scale", "0.01"]},
                 "roles": {"general": {"replicas": 1}}},
    }  # fmt: skip


def _path(namespace: str, plural: str, name: str = "") -> str:
    base = "/api/v1" if plural == "events" else f"/apis/{L.GROUP}/{L.VERSION}"
    return f"{base}/namespaces/{namespace}/{plural}" + (f"/{name}" if name else "")


async def _register_crds(api: aiohttp.ClientSession) -> None:
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        url = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        async with api.post(url, json=crd) as resp:
            assert resp.status == 201, await resp.text()


def _router_yaml(port: int, namespaces: list[str], config: Path) -> str:
    return yaml.safe_dump({
        "server": {"host": "127.0.0.1", "port": port, "shutdown_timeout_s": 1},
        "discovery": {"type": "kubernetes", "namespaces": namespaces,
                      "kubeconfig": str(config), "backoff_initial_s": 0.2},
        "health": {"probe_interval_s": 0.5}, "scrape": {"interval_s": 0.5},
    })  # fmt: skip


@contextlib.asynccontextmanager
async def two_tenant_stack(
    workdir: Path, clock: SteppedClock
) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    """Emulator, kubelet, operator and router serving the allow-list [tenant-a, a-tenant-b]."""
    namespaces = [VICTIM[0], ATTACKER[0]]
    async with (
        running_emulator(store=Store(clock=clock)) as emu,
        aiohttp.ClientSession(base_url=str(emu.url)) as api,
    ):
        await _register_crds(api)
        config = workdir / "kubeconfig.yaml"
        config.write_text(yaml.safe_dump(kubeconfig(str(emu.url).rstrip("/"), "default")))
        port, liveness = free_port(), free_port()
        router_yaml = workdir / "router.yaml"
        router_yaml.write_text(_router_yaml(port, namespaces, config))
        operator = [SAGELLM, "operator", "--api-server", str(emu.url), "--metrics-port", "0",
                    "--liveness-port", str(liveness), "--resync-seconds", "600",
                    *(f"--namespace={ns}" for ns in namespaces)]  # fmt: skip
        router = [SAGELLM, "router", "--config", str(router_yaml), "--log-level", "warning"]
        async with (
            # Its own loopback range: other stacks on this machine use 127.0.0.2 and up.
            FakeKubelet(str(emu.url), simulate=True, _next_ip=random.randrange(1000, 60000)),
            process("operator", operator, workdir) as operator_log,
            process("router", router, workdir) as router_log,
        ):
            await wait_http_ok(f"http://127.0.0.1:{liveness}/healthz", operator_log)
            await wait_http_ok(f"http://127.0.0.1:{port}/health", router_log)
            yield api, f"http://127.0.0.1:{port}"


async def _get(api: aiohttp.ClientSession, path: str) -> Obj:
    async with api.get(path) as resp:
        assert resp.status == 200, await resp.text()
        body: Obj = await resp.json()
        return body


async def _ready_endpoint(api: aiohttp.ClientSession, ns: str, name: str) -> str | None:
    status = (await _get(api, _path(ns, "inferencepools", name))).get("status") or {}
    ready = [e["url"] for e in status.get("endpoints", []) if e.get("ready")]
    return ready[0] if ready else None


def _condition(pool: Obj, kind: str) -> Obj:
    conditions = (pool.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), {})


async def _served(engine: str) -> float:
    """Requests the engine itself finished (its vllm:request_success_total)."""
    async with aiohttp.ClientSession() as http, http.get(f"{engine}/metrics") as resp:
        text = await resp.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("vllm:request_success_total")
    )


async def _complete(router: str, n: int) -> list[str]:
    """Send ``n`` completions for MODEL; the instances that answered (all must be 200)."""
    body = {"model": MODEL, "prompt": "my private prompt", "max_tokens": 4}
    served = []
    async with aiohttp.ClientSession() as http:
        for _ in range(n):
            async with http.post(f"{router}/v1/completions", json=body) as resp:
                assert resp.status == 200, await resp.text()
                served.append(resp.headers["X-Sagellm-Instance"])
    return served


def _pools_of(instances: list[str]) -> list[str]:
    """The pool of each instance name (``<pool>-general-<index>-<spec hash>``)."""
    return [name.rsplit("-general-", 1)[0] for name in instances]


async def test_a_later_pool_with_the_same_model_name_gets_nothing(tmp_path: Path) -> None:
    clock = SteppedClock()
    async with two_tenant_stack(tmp_path, clock) as (api, router):
        await api.post(_path(VICTIM[0], "inferencepools"), json=pool(*VICTIM))
        victim = await eventually(lambda: _ready_endpoint(api, *VICTIM))
        clock.advance(60)
        await api.post(_path(ATTACKER[0], "inferencepools"), json=pool(*ATTACKER))
        evil = await eventually(lambda: _ready_endpoint(api, *ATTACKER))

        async def rejected() -> Obj | None:
            found = await _get(api, _path(ATTACKER[0], "inferencepools", ATTACKER[1]))
            accepted = _condition(found, L.CONDITION_ACCEPTED)
            return accepted if accepted.get("status") == "False" else None

        accepted = await eventually(rejected)
        assert accepted["reason"] == L.REASON_MODEL_NAME_CONFLICT
        assert f"{VICTIM[0]}/{VICTIM[1]}" in accepted["message"]
        owner = await _get(api, _path(VICTIM[0], "inferencepools", VICTIM[1]))
        assert _condition(owner, L.CONDITION_ACCEPTED)["status"] == "True"
        events = (await _get(api, _path(ATTACKER[0], "events")))["items"]
        warnings = [e for e in events if e["involvedObject"]["name"] == ATTACKER[1]
                    and e["reason"] == L.REASON_MODEL_NAME_CONFLICT]  # fmt: skip
        assert {e["type"] for e in warnings} == {"Warning"}, events

        served = await _complete(router, REQUESTS)
        assert _pools_of(served) == [VICTIM[1]] * REQUESTS
        assert await _served(evil) == 0, "the attacker's engine saw a request"
        assert await _served(victim) == REQUESTS


async def _accepted(api: aiohttp.ClientSession, ns: str, name: str) -> bool:
    found = await _get(api, _path(ns, "inferencepools", name))
    return _condition(found, L.CONDITION_ACCEPTED).get("status") == "True"


async def test_the_next_oldest_pool_takes_over_when_the_owner_goes(tmp_path: Path) -> None:
    clock = SteppedClock()
    async with two_tenant_stack(tmp_path, clock) as (api, router):
        await api.post(_path(VICTIM[0], "inferencepools"), json=pool(*VICTIM))
        await eventually(lambda: _ready_endpoint(api, *VICTIM))
        clock.advance(60)
        await api.post(_path(ATTACKER[0], "inferencepools"), json=pool(*ATTACKER))
        await eventually(lambda: _ready_endpoint(api, *ATTACKER))
        assert _pools_of(await _complete(router, 2)) == [VICTIM[1]] * 2
        async with api.delete(_path(VICTIM[0], "inferencepools", VICTIM[1])) as resp:
            assert resp.status == 200
        # The resync runs every 600 s here: the pool's delete event is what re-runs the claimant.
        await eventually(lambda: _accepted(api, *ATTACKER))

        async def served_by_the_new_owner() -> bool:
            return _pools_of(await _complete(router, 1)) == [ATTACKER[1]]

        await eventually(served_by_the_new_owner)
