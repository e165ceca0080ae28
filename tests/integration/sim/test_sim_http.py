"""The simulator's HTTP behaviour over real sockets: errors, ids, metrics, ordering, DP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import aiohttp
import pytest
from sim_helpers import StartSim, scrape

from e2e.waiting import eventually
from sagellm_sim.engine import EngineCore

LONG = " ".join(f"word{i % 97} alpha beta" for i in range(1500))  # ~6000 tokens


async def post(http: aiohttp.ClientSession, url: str, body: Any, **kw: Any) -> tuple[int, Any]:
    data = body if isinstance(body, str) else json.dumps(body)
    async with http.post(url, data=data, **kw) as resp:
        return resp.status, await resp.json()


@pytest.mark.parametrize(
    ("path", "body", "status", "err_type", "param"),
    [
        ("/v1/completions", "{not json", 400, "Bad Request", "body.1"),
        ("/v1/completions", {"prompt": "hi", "max_tokens": "ten"}, 400, "Bad Request",
         "body.max_tokens"),
        ("/v1/completions", {"max_tokens": 3}, 400, "BadRequestError", "prompt"),
        ("/v1/completions", {"prompt": "hi", "max_tokens": 5000}, 400, "BadRequestError",
         "max_tokens"),
        ("/v1/chat/completions", {"messages": []}, 400, "BadRequestError", None),
        ("/v1/chat/completions", {"model": "other", "messages": [{"role": "user",
         "content": "x"}]}, 404, "NotFoundError", "model"),
        ("/v1/completions", {"prompt": "x", "kv_transfer_params": {"do_remote_prefill": True,
         "remote_engine_id": 5}}, 400, "BadRequestError", "kv_transfer_params.remote_engine_id"),
        ("/tokenize", {"model": "other", "prompt": "x"}, 404, "NotFoundError", "model"),
        ("/tokenize", {"model": "sim-model"}, 400, "Bad Request", "body.prompt"),
    ],
)  # fmt: skip
async def test_errors_use_vllm_shape(
    start_sim: StartSim, http: aiohttp.ClientSession, path: str, body: Any, status: int,
    err_type: str, param: str | None,
) -> None:  # fmt: skip
    base = await start_sim()
    got, data = await post(http, base + path, body)
    assert got == status
    assert set(data) == {"error"}
    assert data["error"]["type"] == err_type
    assert data["error"]["code"] == status
    assert data["error"]["param"] == param
    assert data["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "status", "detail"),
    [("GET", "/v1/nothing", 404, "Not Found"), ("GET", "/v1/completions", 405,
      "Method Not Allowed")],
)  # fmt: skip
async def test_unknown_routes_answer_like_fastapi(
    start_sim: StartSim, http: aiohttp.ClientSession, method: str, path: str, status: int,
    detail: str,
) -> None:  # fmt: skip
    base = await start_sim()
    async with http.request(method, base + path) as resp:
        assert resp.status == status
        assert await resp.json() == {"detail": detail}


async def test_request_id_header_is_the_response_id(
    start_sim: StartSim, http: aiohttp.ClientSession
) -> None:
    base = await start_sim()
    body = {"prompt": "hello", "max_tokens": 2}
    _, data = await post(http, f"{base}/v1/completions", body, headers={"X-Request-Id": "abc"})
    assert data["id"] == "cmpl-abc"
    assert data["kv_transfer_params"] is None


async def _ttft(http: aiohttp.ClientSession, base: str, prompt: str) -> float:
    start = time.perf_counter()
    body = {"prompt": prompt, "max_tokens": 2, "stream": True}
    async with http.post(f"{base}/v1/completions", json=body) as resp:
        async for line in resp.content:
            if line.startswith(b"data: {"):
                return time.perf_counter() - start
    raise AssertionError("no token streamed")


async def test_repeated_long_prompt_is_faster_and_moves_prefix_counters(
    start_sim: StartSim, http: aiohttp.ClientSession
) -> None:
    base = await start_sim(sim_time_scale=1.0, max_model_len=8192)
    first = await _ttft(http, base, LONG)
    second = await _ttft(http, base, LONG)
    assert second < first
    m = await scrape(http, base)
    hits = m["vllm:prefix_cache_hits_total{engine=0}"]
    assert hits > 0
    assert m["vllm:prefix_cache_queries_total{engine=0}"] > hits


async def test_full_kv_cache_queues_requests(
    start_sim: StartSim, http: aiohttp.ClientSession
) -> None:
    base = await start_sim(num_gpu_blocks_override=64, max_model_len=1024, sim_time_scale=0.5)
    prompts = [f"request {i} " + "lorem ipsum dolor " * 100 for i in range(8)]
    tasks = [asyncio.create_task(post(http, f"{base}/v1/completions",
                                      {"prompt": p, "max_tokens": 64, "ignore_eos": True}))
             for p in prompts]  # fmt: skip

    async def queued() -> bool:
        return (await scrape(http, base))["vllm:num_requests_waiting{engine=0}"] > 0

    await eventually(queued)
    results = await asyncio.gather(*tasks)
    assert all(status == 200 for status, _ in results)
    m = await scrape(http, base)
    assert m["vllm:num_requests_waiting{engine=0}"] == 0
    assert m["vllm:request_success_total{engine=0,finished_reason=length}"] == 8


async def test_metrics_names_types_and_labels(
    start_sim: StartSim, http: aiohttp.ClientSession
) -> None:
    base = await start_sim(served_model_names=("served",), model="org/model")
    await post(http, f"{base}/v1/completions", {"model": "served", "prompt": "hi", "max_tokens": 3})
    async with http.get(f"{base}/metrics") as resp:
        assert resp.headers["Content-Type"] == "text/plain; version=1.0.0; charset=utf-8"
        text = await resp.text()
    for line in (
        "# TYPE vllm:num_requests_running gauge",
        "# TYPE vllm:kv_cache_usage_perc gauge",
        "# TYPE vllm:prefix_cache_queries_total counter",
        "# TYPE vllm:time_to_first_token_seconds histogram",
        "# TYPE vllm:inter_token_latency_seconds histogram",
        "# TYPE vllm:e2e_request_latency_seconds histogram",
        "# TYPE vllm:request_queue_time_seconds histogram",
    ):
        assert line in text
    m = await scrape(http, base)
    assert m["vllm:num_requests_running{engine=0}"] == 0
    assert m["vllm:generation_tokens_total{engine=0}"] == 3
    assert m["vllm:request_success_total{engine=0,finished_reason=length}"] == 1
    assert m["vllm:request_generation_tokens_sum{engine=0}"] == 3
    assert m["vllm:request_params_n_count{engine=0}"] == 1
    prompt = m["vllm:prompt_tokens_total{engine=0}"]
    assert m["vllm:prompt_tokens_by_source_total{engine=0,source=local_compute}"] == prompt
    assert m["vllm:num_requests_waiting_by_reason{engine=0,reason=capacity}"] == 0
    assert 'model_name="served"' in text
    assert 'model_name="org/model"' not in text
    info = next(ln for ln in text.splitlines() if ln.startswith("vllm:cache_config_info{"))
    assert 'block_size="16"' in info
    assert 'enable_prefix_caching="True"' in info
    assert 'num_gpu_blocks="' in info


async def test_data_parallel_ranks_are_separate_engines(
    start_sim: StartSim, http: aiohttp.ClientSession
) -> None:
    base = await start_sim(data_parallel_size=2)
    body = {"prompt": "pinned", "max_tokens": 4, "ignore_eos": True}
    status, _ = await post(http, f"{base}/v1/completions", body,
                           headers={"X-data-parallel-rank": "1"})  # fmt: skip
    assert status == 200
    m = await scrape(http, base)
    assert m["vllm:generation_tokens_total{engine=1}"] == 4
    assert m["vllm:generation_tokens_total{engine=0}"] == 0
    status, data = await post(http, f"{base}/v1/completions", body,
                              headers={"X-data-parallel-rank": "2"})  # fmt: skip
    assert status == 400
    assert data["error"]["param"] == "X-data-parallel-rank"


async def test_client_disconnect_aborts_the_request(
    start_sim: StartSim, http: aiohttp.ClientSession
) -> None:
    base = await start_sim(sim_time_scale=1.0)
    body = {"prompt": "long story", "max_tokens": 2000, "ignore_eos": True, "stream": True}
    async with http.post(f"{base}/v1/completions", json=body) as resp:
        await resp.content.readline()

    async def aborted() -> bool:
        m = await scrape(http, base)
        aborts = m["vllm:request_success_total{engine=0,finished_reason=abort}"]
        return m["vllm:num_requests_running{engine=0}"] == 0 and aborts == 1

    await eventually(aborted)


async def test_overload_answers_503(start_sim: StartSim, http: aiohttp.ClientSession) -> None:
    base = await start_sim(max_num_seqs=1, sim_max_waiting=1, sim_time_scale=1.0)
    body = {"prompt": "busy", "max_tokens": 3000, "ignore_eos": True}
    running = asyncio.create_task(post(http, f"{base}/v1/completions", body))

    async def state(name: str) -> bool:
        return (await scrape(http, base))[f"vllm:{name}{{engine=0}}"] == 1

    await eventually(lambda: state("num_requests_running"))
    waiting = asyncio.create_task(post(http, f"{base}/v1/completions", body))
    await eventually(lambda: state("num_requests_waiting"))
    status, data = await post(http, f"{base}/v1/completions", body)
    assert status == 503
    assert data["error"]["type"] == "ServiceUnavailableError"
    running.cancel()
    waiting.cancel()


async def test_dead_engine_fails_health_and_requests(
    start_sim: StartSim, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = await start_sim()

    def broken(self: EngineCore, now: float) -> None:
        raise RuntimeError("simulated engine bug")

    monkeypatch.setattr(EngineCore, "schedule", broken)
    with contextlib.suppress(TimeoutError):  # the request that hit the bug never finishes
        await post(http, f"{base}/v1/completions", {"prompt": "x", "max_tokens": 1},
                   timeout=aiohttp.ClientTimeout(total=0.5))  # fmt: skip
    monkeypatch.undo()

    async def unhealthy() -> bool:
        async with http.get(f"{base}/health") as resp:
            return resp.status == 503

    await eventually(unhealthy)
    status, data = await post(http, f"{base}/v1/completions", {"prompt": "x", "max_tokens": 1})
    assert status == 500
    assert data["error"]["type"] == "InternalServerError"
