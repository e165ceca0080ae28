"""What the seed names mean, against real simulator engines: live load, monitoring, the
router/load-balancer handles, parallelism hints, priority to better instances, sampling
parameters, the hybrid policy and strict keywords."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from router_procs import Proc, start_sims

from control_plane import (
    ControlPlaneManager,
    ExecutionInstance,
    HybridSchedulingPolicy,
    RequestFailed,
    RequestMetadata,
    RequestPriority,
    SamplingParams,
)
from control_plane.types import ParallelismType
from e2e.waiting import eventually


@pytest.fixture(scope="module")
def sims() -> Iterator[list[Proc]]:
    procs = start_sims(2, "tiny", time_scale=0.05) + start_sims(
        1, "emb", "--runner", "pooling", time_scale=0.05
    )
    yield procs
    for p in procs:
        p.stop()


def inst(name: str, proc: Proc, model: str = "tiny", **kw: object) -> ExecutionInstance:
    parts = urlsplit(proc.url)
    return ExecutionInstance(instance_id=name, host=parts.hostname, port=parts.port,
                             model_name=model, **kw)  # type: ignore[arg-type]  # fmt: skip


def test_unknown_keywords_are_type_errors() -> None:
    with pytest.raises(TypeError, match="scheduling_polcy"):
        ControlPlaneManager(scheduling_polcy="fifo")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="priorty"):
        RequestMetadata(priorty=RequestPriority.HIGH)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="'fastest' is not a known strategy"):
        ControlPlaneManager(routing_strategy="fastest")


async def test_current_load_is_live(sims: list[Proc]) -> None:
    cp = ControlPlaneManager(scheduling_policy="fifo", enable_monitoring=False)
    cp.register_instance(inst("vllm-1", sims[0], max_concurrent_requests=4))
    await cp.start()
    try:
        for i in range(4):
            await cp.submit_request(RequestMetadata(f"r{i}", prompt="x", max_tokens=2000))
        await eventually(lambda: cp.get_instances()[0].current_load == 1.0)
        assert cp.get_instance_metrics("vllm-1")["current_load"] == 1.0
        assert cp.get_instance_metrics("vllm-1")["active_requests"] == 4
        for i in range(4):
            await cp.cancel_request(f"r{i}")
        await eventually(lambda: cp.get_instances()[0].current_load == 0.0)
    finally:
        await cp.stop()


@pytest.mark.parametrize("monitoring", [True, False])
async def test_enable_monitoring_scrapes_the_engines(sims: list[Proc], monitoring: bool) -> None:
    cp = ControlPlaneManager(enable_monitoring=monitoring)
    cp.register_instance(inst("vllm-1", sims[0]))
    await cp.start()
    try:
        await cp.process_request("hello", {"max_tokens": 4})
        if monitoring:
            await eventually(lambda: cp.get_instance_metrics("vllm-1").kv_cache_usage is not None)
        else:
            await asyncio.sleep(1.2)  # two scrape intervals of the monitored manager
            assert cp.get_instance_metrics("vllm-1").kv_cache_usage is None
        assert cp.get_status()["monitoring"] is monitoring
    finally:
        await cp.stop()


async def test_router_and_load_balancer_handles(sims: list[Proc]) -> None:
    cp = ControlPlaneManager(routing_strategy="load_balanced", enable_monitoring=False)
    cp.register_instance(inst("a", sims[0], max_concurrent_requests=8))
    cp.register_instance(inst("b", sims[1], max_concurrent_requests=8))
    await cp.start()
    try:
        cp.router.routing_strategy = "round_robin"
        assert cp.routing_strategy == "round_robin"
        assert cp.get_status()["routing_strategy"] == "round_robin"
        with pytest.raises(ValueError, match="unknown routing strategy"):
            cp.router.routing_strategy = "fastest"
        busy = [f"busy{i}" for i in range(3)]
        for rid in busy:  # round robin: a, b, a -> a has two in flight, b one
            await cp.submit_request(RequestMetadata(rid, prompt="x", max_tokens=2000))
        await eventually(lambda: sum(i.active_requests for i in cp.get_instances()) == 3)
        loaded = {i.instance_id: i.active_requests for i in cp.get_instances()}
        least = min(loaded, key=lambda k: loaded[k])
        pick = cp.load_balancer.select_instance(cp.get_instances(), algorithm="load_balanced")
        assert pick is not None
        assert pick.instance_id == least
        wrr = cp.load_balancer.select_instance(cp.get_instances(), "weighted_round_robin")
        assert wrr is not None
        assert wrr.instance_id in {"a", "b"}
        with pytest.raises(ValueError, match="unknown routing algorithm"):
            cp.load_balancer.select_instance(cp.get_instances(), algorithm="nope")
        assert cp.get_status()["available_instances"] == 2
        for rid in busy:
            await cp.cancel_request(rid)
    finally:
        await cp.stop()


async def test_parallelism_hint_picks_the_matching_layout(sims: list[Proc]) -> None:
    cp = ControlPlaneManager(scheduling_policy="fifo", routing_strategy="round_robin")
    cp.register_instance(inst("tp1", sims[0]))
    cp.register_instance(inst("tp4", sims[1], tensor_parallel_size=4, gpu_count=4))
    await cp.start()
    try:
        hinted = {(await cp.process_request(
            "x", {"max_tokens": 2}, parallelism_hint=ParallelismType.TP))["instance"]
            for _ in range(6)}  # fmt: skip
        assert hinted == {"tp4"}
        plain = {(await cp.process_request("x", {"max_tokens": 2}))["instance"] for _ in range(6)}
        assert plain == {"tp1", "tp4"}
        hybrid = {(await cp.process_request(
            "x", {"max_tokens": 2}, parallelism_hint=ParallelismType.HYBRID))["instance"]
            for _ in range(4)}  # fmt: skip
        assert hybrid == {"tp1", "tp4"}  # no hybrid instance: no preference
    finally:
        await cp.stop()


async def test_sampling_params_objects_and_dicts(sims: list[Proc]) -> None:
    cp = ControlPlaneManager()
    cp.register_instance(inst("vllm-1", sims[0]))
    try:
        out = await cp.process_request(
            prompt="Hello", sampling_params=SamplingParams(temperature=0.7, max_tokens=5)
        )
        assert out["usage"]["completion_tokens"] == 5  # started on first use, max_tokens kept
        with pytest.raises(TypeError, match=r"unknown sampling parameters \['tempature'\]"):
            await cp.process_request("Hello", {"tempature": 0.1})
        with pytest.raises(ValueError, match="has no prompt: add prompt="):
            await cp.submit_request(RequestMetadata(model_name="tiny"))
    finally:
        await cp.stop()


async def test_hybrid_policy_gives_each_pool_kind_its_policy(sims: list[Proc]) -> None:
    cp = ControlPlaneManager(scheduling_policy=HybridSchedulingPolicy("slo_aware", "fifo"))
    cp.register_instance(inst("gen", sims[0]))
    cp.register_instance(inst("emb", sims[2], "emb", task="embed"))
    await cp.start()
    try:
        pools = cp.get_status()["pools"]
        assert (pools["tiny"]["policy"], pools["emb"]["policy"]) == ("slo_aware", "fifo")
        assert cp.get_status()["scheduling_policy"] == "hybrid"
        cp.update_policy(HybridSchedulingPolicy("priority", "fifo"))
        assert cp.get_status()["pools"]["tiny"]["policy"] == "priority"
        with pytest.raises(ValueError, match="unknown scheduling policy 'best'"):
            cp.update_policy(HybridSchedulingPolicy("best"))
    finally:
        await cp.stop()


async def test_cost_budget_is_enforced_by_cost_optimized(sims: list[Proc]) -> None:
    cp = ControlPlaneManager(scheduling_policy="cost_optimized")
    cp.register_instance(inst("pricey", sims[0], cost_per_gpu_hour=100.0, gpu_count=8))
    try:
        with pytest.raises(RequestFailed, match=r"failed: .*budget"):
            await cp.process_request("x", {"max_tokens": 500}, cost_budget=1e-9)
        ok = await cp.process_request("x", {"max_tokens": 5}, cost_budget=10.0)
        assert ok["usage"]["completion_tokens"] == 5
    finally:
        await cp.stop()
