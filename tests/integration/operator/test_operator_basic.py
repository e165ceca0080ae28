"""The operator end to end against the emulated API: pools → instances → pods → status."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from operator_harness import cluster, operator_running, sample

from e2e.waiting import eventually
from sagellm_core.api import labels as L
from tests.kubeemu import PodBehaviour

Obj = dict[str, Any]


def _args(pod: Obj) -> list[str]:
    return list(pod["spec"]["containers"][0]["args"])


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


async def test_general_pool_gets_instances_pods_and_endpoints() -> None:
    held: set[str] = set()

    def behaviour(pod: Obj) -> PodBehaviour:
        held.add(pod["metadata"]["name"])
        return PodBehaviour(ready=False)  # running but not ready until the test says so

    async with cluster(behaviour) as c, operator_running(c.emu):
        pool = sample("general-pool", "chat")
        pool["spec"]["roles"]["general"]["replicas"] = 2
        await c.create_pool(pool)
        pods = await eventually(lambda: _n(c.pods(f"{L.LABEL_POOL}=chat"), 2))
        names = sorted(i["metadata"]["name"] for i in await c.instances("chat"))
        assert [n.rsplit("-", 1)[0] for n in names] == ["chat-general-0", "chat-general-1"]
        args = _args(pods[0])
        assert args[0] == pool["spec"]["model"]["source"]
        assert _flag(args, "--tensor-parallel-size") == "1"
        assert _flag(args, "--served-model-name") == pool["spec"]["model"]["name"]
        container = pods[0]["spec"]["containers"][0]
        assert container["command"] == ["vllm", "serve"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        status = (await c.pool("chat")).get("status", {})
        assert not any(e["ready"] for e in status.get("endpoints", []))  # nobody is ready yet
        for pod in pods:
            await c.kubelet.report(pod, PodBehaviour())
        status = await eventually(lambda: _ready_pool(c, "chat"))
        assert [e["instance"] for e in status["endpoints"]] == names
        assert all(e["url"].startswith("http://10.244.") for e in status["endpoints"])
        assert status["roles"] == [{"role": "General", "desired": 2, "ready": 2}]
        assert status["plan"][0]["tensor"] == 1
        assert status["observedGeneration"] == 1
        assert {c["observedGeneration"] for c in status["conditions"]} == {1}
        for inst in await c.instances("chat"):  # instance conditions too, at their generation
            gen = inst["metadata"]["generation"]
            assert [c["observedGeneration"] for c in inst["status"]["conditions"]] == [gen]


async def test_pd_pool_runs_prefill_and_decode_with_kv_transfer() -> None:
    async with cluster() as c, operator_running(c.emu):
        await c.create_pool(sample("pd-pool", "pd"))
        status = await eventually(lambda: _ready_pool(c, "pd"))
        roles = {r["role"]: r for r in status["roles"]}
        assert set(roles) == {"Prefill", "Decode"}
        for role in ("prefill", "decode"):
            pods = await c.pods(f"{L.LABEL_POOL}=pd,{L.LABEL_ROLE}={role}")
            assert pods, role
            args = _args(pods[0])
            config = json.loads(_flag(args, "--kv-transfer-config"))
            assert config["kv_connector"] == "NixlConnector"
            env = {e["name"] for e in pods[0]["spec"]["containers"][0]["env"]}
            assert {"VLLM_HOST_IP", "VLLM_NIXL_SIDE_CHANNEL_HOST"} <= env
        endpoint_roles = {e["role"] for e in status["endpoints"]}
        assert endpoint_roles == {"Prefill", "Decode"}
        # The router reads this status and never the spec: slots, model, task and scheduling.
        slots = {e["role"]: e["maxConcurrency"] for e in status["endpoints"]}
        assert slots == {"Prefill": 256, "Decode": 64}  # vLLM's default; maxParallelRequests
        spec = sample("pd-pool", "pd")["spec"]
        assert (status["model"], status["task"]) == (spec["model"]["name"], "generate")
        assert status["scheduling"]["routing"] == spec["scheduling"]["routing"]


async def test_invalid_spec_sets_condition_and_event_and_creates_nothing() -> None:
    async with cluster() as c, operator_running(c.emu):
        pool = sample("general-pool", "huge")
        pool["spec"]["model"]["parameters"] = 2000
        pool["spec"]["engine"]["gpuMemoryGiB"] = 16
        pool["spec"]["engine"]["gpusPerNode"] = 1
        await c.create_pool(pool)
        status = await eventually(lambda: _status_with_phase(c, "huge", "Failed"))
        ready = next(x for x in status["conditions"] if x["type"] == "Ready")
        assert ready["status"] == "False"
        assert ready["reason"] == "InvalidSpec"
        events = await eventually(lambda: c.events("huge"))
        assert any(e["type"] == "Warning" and e["reason"] == "InvalidSpec" for e in events)
        assert "roles.general" in events[0]["message"]
        assert await c.instances("huge") == []
        assert await c.pods(f"{L.LABEL_POOL}=huge") == []


async def test_simulator_engine_runs_sagellm_sim_without_gpus() -> None:
    async with cluster() as c, operator_running(c.emu, resync=0.3) as metrics:
        await c.create_pool(sample("simulator-pool", "sim"))
        pods = await eventually(lambda: c.pods(f"{L.LABEL_POOL}=sim"))
        container = pods[0]["spec"]["containers"][0]
        assert container["command"] == ["sagellm", "sim"]
        assert "nvidia.com/gpu" not in json.dumps(container.get("resources", {}))
        assert container["securityContext"]["runAsNonRoot"] is True

        async def gauges() -> bool:  # filled by the resync loop
            value = metrics.registry.get_sample_value
            return (value("sagellm_operator_pools", {"phase": "Ready"}) == 1
                    and value("sagellm_operator_instances", {"phase": "Ready"}) == 2)  # fmt: skip

        await eventually(gauges)


async def _n(coro: Any, n: int) -> list[Obj] | None:
    items: list[Obj] = await coro
    return items if len(items) == n else None


async def _ready_pool(c: Any, name: str) -> Obj | None:
    return await _status_with_phase(c, name, "Ready")


async def _status_with_phase(c: Any, name: str, phase: str) -> Obj | None:
    status: Obj = (await c.pool(name)).get("status") or {}
    return status if status.get("phase") == phase else None


async def test_the_operator_watches_only_its_own_pods() -> None:
    """The label selector is applied by the API server: the pod watch request carries it."""
    async with cluster() as c:
        c.emu.request_log = 100_000  # keep the history to look at the operator's requests
        async with operator_running(c.emu):
            await c.create_pool(sample("general-pool", "sel"))
            await eventually(lambda: _ready_pool(c, "sel"))
        watches = [r for r in c.emu if r.resource is not None and r.resource.plural == "pods"
                   and r.params.get("watch") == "true"
                   and "kopf" in r.headers.get("User-Agent", "")]  # fmt: skip
        assert watches, "the operator never watched pods"
        managed = f"{L.LABEL_MANAGED_BY}={L.MANAGED_BY_VALUE}"
        assert {r.params.get("labelSelector") for r in watches} == {managed}


async def test_lookups_come_from_kopfs_indices_not_api_reads() -> None:
    """Pod events find their instance, instances their pods, the resync every pool and instance
    in kopf's indices: the operator's own client never reads pods, nor instances by name."""
    async with cluster() as c:
        c.emu.request_log = 100_000
        async with operator_running(c.emu, resync=0.3):
            await c.create_pool(sample("general-pool", "idx"))
            await eventually(lambda: _ready_pool(c, "idx"))
            await asyncio.sleep(1)  # a few resync passes
        # kubernetes_asyncio's user agent (kopf and the fake kubelet send their own).
        reads = [r for r in c.emu if str(r.method).upper().endswith("GET")
                 and r.headers.get("User-Agent", "").startswith("OpenAPI-Generator")
                 and r.resource is not None]  # fmt: skip
        assert reads, "the operator's own client made no read at all"
        pods = [r.url for r in reads if r.resource.plural == "pods"]
        by_name = [r.url for r in reads if r.resource.plural == "executioninstances" and r.name]
        assert pods == []
        assert by_name == []
