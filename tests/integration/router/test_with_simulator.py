"""The router in front of real simulator processes: strategy distributions and failover."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator

import aiohttp
import pytest
from router_fakes import pool, router_yaml
from router_procs import Proc, start_sims


@pytest.fixture(scope="module")
def sims() -> Iterator[list[Proc]]:
    procs = start_sims(3)
    yield procs
    for p in procs:
        p.stop()


async def served_by(url: str, bodies: list[dict], headers: list[dict] | None = None) -> list[str]:  # type: ignore[type-arg]
    """Send the bodies one after another; return the instance that served each."""
    out = []
    async with aiohttp.ClientSession() as s:
        for i, body in enumerate(bodies):
            async with s.post(
                url + "/v1/completions", json=body, headers=(headers or [{}] * len(bodies))[i]
            ) as r:
                assert r.status == 200, await r.text()
                await r.read()
                out.append(r.headers["X-Sagellm-Instance"])
    return out


def body(prompt: str = "hello", **kw: object) -> dict[str, object]:
    return {"model": "tiny", "prompt": prompt, "max_tokens": 2, **kw}


async def sim_successes(proc: Proc) -> float:
    async with aiohttp.ClientSession() as s, s.get(proc.url + "/metrics") as r:
        text = await r.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("vllm:request_success_total{")
    )


async def test_round_robin_is_even_and_matches_engine_metrics(sims, start_router) -> None:  # type: ignore[no-untyped-def]
    before = [await sim_successes(p) for p in sims]
    url = await start_router(router_yaml([pool("p", "tiny", [p.url for p in sims])]))
    counts = Counter(await served_by(url, [body()] * 30))
    assert counts == {"p-0": 10, "p-1": 10, "p-2": 10}
    after = [await sim_successes(p) for p in sims]
    assert [a - b for a, b in zip(after, before, strict=True)] == [10, 10, 10]


async def test_weighted_round_robin_follows_weights(sims, start_router) -> None:  # type: ignore[no-untyped-def]
    doc = router_yaml([pool("p", "tiny", [p.url for p in sims], "weighted_round_robin")])
    for endpoint, weight in zip(doc["discovery"]["pools"][0]["endpoints"], (2, 1, 1), strict=True):
        endpoint["weight"] = weight
    url = await start_router(doc)
    assert Counter(await served_by(url, [body()] * 40)) == {"p-0": 20, "p-1": 10, "p-2": 10}


@pytest.mark.parametrize("strategy", ["random", "load_balanced", "power_of_two"])
async def test_load_spreading_strategies_use_every_engine(sims, start_router, strategy) -> None:  # type: ignore[no-untyped-def]
    url = await start_router(router_yaml([pool("p", "tiny", [p.url for p in sims], strategy)]))
    counts = Counter(await served_by(url, [body()] * 30))
    assert set(counts) == {"p-0", "p-1", "p-2"}


@pytest.mark.parametrize("strategy", ["locality", "prefix_aware"])
async def test_prefix_strategies_keep_a_document_on_one_engine(
    sims, start_router, strategy
) -> None:  # type: ignore[no-untyped-def]
    url = await start_router(router_yaml([pool("p", "tiny", [p.url for p in sims], strategy)]))
    docs = [f"document {d}: " + f"shared context {d} " * 40 for d in range(6)]
    bodies = [body(docs[i % 6] + f" question {i}") for i in range(24)]
    served = await served_by(url, bodies)
    homes = {i % 6: set() for i in range(6)}  # type: dict[int, set[str]]
    for i, instance in enumerate(served):
        homes[i % 6].add(instance)
    assert all(len(h) == 1 for h in homes.values())
    assert len(set(served)) >= 2


async def test_affinity_and_header_override(sims, start_router) -> None:  # type: ignore[no-untyped-def]
    url = await start_router(router_yaml([pool("p", "tiny", [p.url for p in sims], "round_robin")]))
    users = [f"user-{i % 5}" for i in range(20)]
    headers = [{"x-routing-strategy": "affinity", "x-session-id": u} for u in users]
    served = await served_by(url, [body()] * 20, headers)
    per_user = {u: {s for uu, s in zip(users, served, strict=True) if uu == u} for u in users}
    assert all(len(s) == 1 for s in per_user.values())


async def _stream(
    s: aiohttp.ClientSession, url: str, i: int, started: list[int], all_started: asyncio.Event
) -> tuple[str, str]:
    payload = body(
        f"failover {i}",
        max_tokens=200,
        ignore_eos=True,
        stream=True,
        stream_options={"include_usage": True},
    )
    async with s.post(url + "/v1/completions", json=payload) as r:
        assert r.status == 200
        first = await r.content.readany()
        started.append(i)
        if len(started) == 9:
            all_started.set()
        return r.headers["X-Sagellm-Instance"], (first + await r.read()).decode()


async def _plain(s: aiohttp.ClientSession, url: str, i: int) -> int:
    async with s.post(url + "/v1/completions", json=body(f"plain {i}", max_tokens=20)) as r:
        await r.read()
        return r.status


@pytest.mark.parametrize("failover", [True, False])
async def test_killing_an_engine_mid_run_loses_no_request(start_router, failover) -> None:  # type: ignore[no-untyped-def]
    procs = start_sims(3, time_scale=0.2)  # 200-token streams take about a second
    try:
        doc = router_yaml([pool("p", "tiny", [p.url for p in procs])])
        doc["discovery"]["pools"][0]["scheduling"] = {"midStreamFailover": failover}
        url = await start_router(doc)
        async with aiohttp.ClientSession() as s:
            started: list[int] = []
            all_started = asyncio.Event()  # every stream has its first bytes
            streams = [
                asyncio.create_task(_stream(s, url, i, started, all_started)) for i in range(9)
            ]
            await all_started.wait()
            procs[0].proc.kill()
            plain = await asyncio.gather(*(_plain(s, url, i) for i in range(30)))
            texts = await asyncio.gather(*streams)
        assert plain == [200] * 30  # nothing lost that had not started streaming
        for instance, text in texts:
            events = [e.removeprefix("data: ") for e in text.strip().split("\n\n")]
            assert events[-1] == "[DONE]"
            errors = [json.loads(e)["error"] for e in events[:-1] if '"error"' in e]
            if instance == "p-0" and not failover:  # without failover: a clear error event
                assert [e["code"] for e in errors] == [502]
                assert "failed mid-stream" in errors[0]["message"]
            else:  # with failover, streams of the killed engine continue elsewhere
                assert events.count("[DONE]") == 1
                assert len({json.loads(e)["id"] for e in events[:-1]}) == 1
                assert errors == []
                assert json.loads(events[-2])["usage"]["completion_tokens"] == 200
        assert sum(1 for instance, _ in texts if instance == "p-0") == 3
    finally:
        for p in procs:
            p.stop()
