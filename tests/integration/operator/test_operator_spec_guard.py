"""Specs cannot override what the operator owns: the API refuses what CEL can see (422 naming
the flag), the operator refuses the rest (Ready=False, InvalidSpec, a Warning Event naming the
problem) and creates nothing."""

from __future__ import annotations

from typing import Any

import pytest
from operator_harness import BASE, NS, cluster, operator_running, sample

from e2e.waiting import eventually
from sagellm_core.api import labels as L
from tests.kubeemu import PodBehaviour

Obj = dict[str, Any]


def _with(name: str, **engine: Any) -> Obj:
    pool = sample("general-pool", name)
    pool["spec"]["engine"].update(engine)
    return pool


@pytest.mark.parametrize(
    ("name", "engine", "named"),
    [
        ("port", {"extraArgs": ["--port", "9999"]}, "--port"),
        ("tp", {"extraArgs": ["--tensor-parallel-size", "4"]}, "--tensor-parallel-size"),
        ("tp-eq", {"extraArgs": ["--max-num-seqs", "8", "-tp=4"]}, "-tp=4"),
        ("served", {"extraArgs": ["--served-model-name", "other"]}, "--served-model-name"),
        ("kv", {"extraArgs": ["--kv-transfer-config={}"]}, "--kv-transfer-config={}"),
        ("hostip", {"env": [{"name": "VLLM_HOST_IP", "value": "1.2.3.4"}]}, "VLLM_HOST_IP"),
        ("empty-image", {"image": ""}, "spec.engine.image"),
        ("blank-image", {"image": " "}, "spec.engine.image"),
    ],
)
async def test_the_api_refuses_owned_flags_and_blank_images(
    name: str, engine: Obj, named: str
) -> None:
    async with cluster() as c:
        resp = await c.http.post(f"{BASE}/inferencepools", json=_with(name, **engine))
        assert resp.status == 422
        assert named in await resp.text()


async def test_the_api_refuses_a_pool_name_whose_derived_names_would_not_fit() -> None:
    async with cluster() as c:
        ok = await c.http.post(f"{BASE}/inferencepools", json=sample("general-pool", "p" * 40))
        assert ok.status == 201
        long = await c.http.post(f"{BASE}/inferencepools", json=sample("general-pool", "p" * 54))
        assert long.status == 422
        assert f"at most {L.MAX_POOL_NAME} characters" in await long.text()


async def _refused(c: Any, name: str) -> Obj:
    async def failed() -> Obj | None:
        status: Obj = (await c.pool(name)).get("status") or {}
        return status if status.get("phase") == "Failed" else None

    status = await eventually(failed)
    ready = next(x for x in status["conditions"] if x["type"] == L.CONDITION_READY)
    assert (ready["status"], ready["reason"]) == ("False", L.REASON_INVALID_SPEC)
    events = await eventually(lambda: c.events(name))
    (warning,) = [e for e in events if e["reason"] == L.REASON_INVALID_SPEC]
    assert warning["type"] == "Warning"
    assert await c.instances(name) == []
    assert await c.pods(f"{L.LABEL_POOL}={name}") == []
    return dict(warning)


async def test_spellings_cel_cannot_see_are_refused_by_the_operator() -> None:
    async with cluster() as c, operator_running(c.emu):
        await c.create_pool(_with("sneaky", extraArgs=["--tensor_parallel_size", "4"]))
        warning = await _refused(c, "sneaky")
        assert "'--tensor_parallel_size' sets --tensor-parallel-size" in warning["message"]


async def test_a_plan_beyond_the_node_limit_is_refused_with_a_fix() -> None:
    async with cluster() as c, operator_running(c.emu, max_nodes_per_instance=8):
        pool = _with("huge", gpuMemoryGiB=24, gpusPerNode=2)
        pool["spec"]["model"]["parameters"] = 400
        await c.create_pool(pool)
        warning = await _refused(c, "huge")
        assert "needs 20 nodes per instance" in warning["message"]
        assert "Fix: " in warning["message"]


async def test_engine_pods_run_restricted() -> None:
    async with cluster(lambda pod: PodBehaviour()) as c, operator_running(c.emu):
        await c.create_pool(sample("simulator-pool", "sim"))
        pods = await eventually(lambda: c.pods(f"{L.LABEL_POOL}=sim"))
        spec = pods[0]["spec"]
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        csc = spec["containers"][0]["securityContext"]
        assert (csc["runAsNonRoot"], csc["allowPrivilegeEscalation"]) == (True, False)
        assert csc["capabilities"] == {"drop": ["ALL"]}


ROUTER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "sagellm-system"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/component": "router"}},
}


async def test_each_pool_gets_an_engine_network_policy() -> None:
    async with cluster() as c, operator_running(c.emu, engine_ingress_peers=(ROUTER,)):
        await c.create_pool(sample("simulator-pool", "sim"))
        pods = await eventually(lambda: c.pods(f"{L.LABEL_POOL}=sim"))
        path = f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/sim-engines"
        policy = await c.get(path)
        assert policy is not None
        spec = policy["spec"]
        assert spec["podSelector"]["matchLabels"].items() <= pods[0]["metadata"]["labels"].items()
        own, peers = spec["ingress"]
        assert own == {"from": [{"podSelector": spec["podSelector"]}]}
        assert peers == {"from": [ROUTER], "ports": [{"port": 8000, "protocol": "TCP"}]}
        pool = await c.pool("sim")
        assert policy["metadata"]["ownerReferences"][0]["uid"] == pool["metadata"]["uid"]
        await c.http.delete(path)  # level-based: the next resync puts it back

        async def restored() -> Obj | None:
            return await c.get(path)

        assert await eventually(restored)


async def test_no_network_policy_unless_configured() -> None:
    async with cluster() as c, operator_running(c.emu):
        await c.create_pool(sample("simulator-pool", "sim"))
        await eventually(lambda: c.pods(f"{L.LABEL_POOL}=sim"))
        listed = await c.items(f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies")
        assert listed == []


async def test_a_kv_aware_pools_policy_opens_the_event_ports_to_the_routers() -> None:
    scraper = {"podSelector": {"matchLabels": {"app": "prometheus"}}}
    settings = {"engine_ingress_peers": (ROUTER, scraper), "kv_event_peers": (ROUTER,)}
    async with cluster() as c, operator_running(c.emu, **settings):
        pool = sample("simulator-pool", "kv")
        pool["spec"]["scheduling"]["routing"] = "kv_aware"
        await c.create_pool(pool)
        pods = await eventually(lambda: c.pods(f"{L.LABEL_POOL}=kv"))
        assert "--kv-events-config" in pods[0]["spec"]["containers"][0]["args"]
        path = f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/kv-engines"
        policy = await c.get(path)
        assert policy is not None
        _, http, events = policy["spec"]["ingress"]
        assert http["from"] == [ROUTER, scraper]
        ports = [{"port": 5557, "protocol": "TCP"}, {"port": 5558, "protocol": "TCP"}]
        assert events == {"from": [ROUTER], "ports": ports}
