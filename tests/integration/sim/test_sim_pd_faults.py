"""Prefill/decode between two simulators, and injected faults, over real HTTP."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from sim_helpers import StartSim, scrape

from e2e.waiting import eventually
from sagellm_sim.config import Faults, KvTransferConfig

PROMPT = "Summarise the following report. " + "The quarterly numbers grew steadily. " * 60


def kvt(role: str) -> KvTransferConfig:
    return KvTransferConfig("NixlConnector", role, f"engine-{role}")


async def post(http: aiohttp.ClientSession, url: str, body: Any, **kw: Any) -> tuple[int, Any]:
    async with http.post(url, json=body, **kw) as resp:
        return resp.status, await resp.json()


async def test_prefill_then_decode_transfers_kv_and_frees_it(
    start_sim: StartSim, http: aiohttp.ClientSession
) -> None:
    prefill = await start_sim(kv_transfer=kvt("kv_producer"))
    decode = await start_sim(kv_transfer=kvt("kv_consumer"))
    leg1 = {"prompt": PROMPT, "max_tokens": 1, "stream": False,
            "kv_transfer_params": {"do_remote_decode": True, "do_remote_prefill": False,
                                   "remote_engine_id": None, "remote_block_ids": None,
                                   "remote_host": None, "remote_port": None}}  # fmt: skip
    status, p = await post(http, f"{prefill}/v1/completions", leg1, headers={"X-Request-Id": "r1"})
    assert status == 200
    params = p["kv_transfer_params"]
    assert params["do_remote_prefill"] is True
    assert params["do_remote_decode"] is False
    assert params["remote_engine_id"] == "engine-kv_producer"
    assert params["remote_request_id"].startswith("cmpl-r1")
    assert params["remote_num_tokens"] == p["usage"]["prompt_tokens"]
    assert len(params["remote_block_ids"]) == -(-p["usage"]["prompt_tokens"] // 16)
    assert params["tp_size"] == 1
    assert (await scrape(http, prefill))["vllm:kv_cache_usage_perc{engine=0}"] > 0  # held

    leg2 = {"prompt": PROMPT, "max_tokens": 8, "ignore_eos": True, "kv_transfer_params": params}
    status, d = await post(http, f"{decode}/v1/completions", leg2, headers={"X-Request-Id": "r1"})
    assert status == 200
    assert d["usage"]["completion_tokens"] == 8
    assert d["kv_transfer_params"] is None
    m = await scrape(http, decode)
    assert m["vllm:prefix_cache_queries_total{engine=0}"] == 0  # prompt not computed locally

    async def released() -> bool:
        return (await scrape(http, prefill))["vllm:kv_cache_usage_perc{engine=0}"] == 0

    await eventually(released)


async def test_unpulled_kv_is_freed_after_the_abort_timeout(
    start_sim: StartSim, http: aiohttp.ClientSession
) -> None:
    prefill = await start_sim(kv_transfer=kvt("kv_both"), sim_kv_hold_seconds=0.2)
    body = {"prompt": PROMPT, "max_tokens": 1, "kv_transfer_params": {"do_remote_decode": True}}
    status, _ = await post(http, f"{prefill}/v1/completions", body)
    assert status == 200

    async def freed() -> bool:
        return (await scrape(http, prefill))["vllm:kv_cache_usage_perc{engine=0}"] == 0

    await eventually(freed)


async def test_without_a_connector_kv_params_are_ignored(
    start_sim: StartSim, http: aiohttp.ClientSession
) -> None:
    base = await start_sim()
    body = {"prompt": "x", "max_tokens": 1, "kv_transfer_params": {"do_remote_decode": True}}
    status, data = await post(http, f"{base}/v1/completions", body)
    assert status == 200
    assert data["kv_transfer_params"] is None


async def test_error_rate_answers_500_in_vllm_shape(
    start_sim: StartSim, http: aiohttp.ClientSession
) -> None:
    base = await start_sim(sim_faults=Faults(error_rate=1.0))
    status, data = await post(http, f"{base}/v1/completions", {"prompt": "x", "max_tokens": 1})
    assert status == 500
    assert data["error"]["type"] == "InternalServerError"
    assert data["error"]["code"] == 500


async def test_admin_endpoint_is_off_by_default_and_changes_faults_when_on(
    start_sim: StartSim, http: aiohttp.ClientSession
) -> None:
    plain = await start_sim()
    status, _ = await post(http, f"{plain}/sim/faults", {"error_rate": 1.0})
    assert status == 404
    admin = await start_sim(sim_admin=True)
    status, data = await post(http, f"{admin}/sim/faults", {"error_rate": 1.0, "slow_factor": 2})
    assert status == 200
    assert data["error_rate"] == 1.0
    assert data["slow_factor"] == 2.0
    status, _ = await post(http, f"{admin}/v1/completions", {"prompt": "x", "max_tokens": 1})
    assert status == 500
    status, data = await post(http, f"{admin}/sim/faults", {"error_rate": 7})
    assert status == 400
    assert "error_rate" in data["error"]["message"]


async def _raw_stream(base: str, idle: float) -> tuple[bytes, bool]:
    """Raw bytes of a streamed completion, and whether the server closed the connection.

    A raw socket (not an HTTP client) so bytes sent just before a cut are still counted.
    """
    host, port = base.removeprefix("http://").split(":")
    body = json.dumps({"prompt": "tell me", "max_tokens": 50, "ignore_eos": True, "stream": True})
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
    )
    data, closed = b"", False
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), idle):
            data += chunk
        closed = True
    except TimeoutError:
        pass
    writer.close()
    return data, closed


@pytest.mark.parametrize(
    ("fault", "closed"), [("stall_after_tokens", False), ("cut_stream_after_tokens", True)]
)
async def test_stream_faults_stop_after_n_tokens_without_done(
    start_sim: StartSim, fault: str, closed: bool
) -> None:
    base = await start_sim(sim_faults=Faults(**{fault: 5}), sim_time_scale=0.001)
    data, was_closed = await _raw_stream(base, idle=1.0)
    assert was_closed is closed
    assert b"data: [DONE]" not in data
    events = [json.loads(line[6:]) for line in data.split(b"\r\n") if line.startswith(b"data: {")]
    assert sum(len(e["choices"][0]["text"].split()) for e in events) == 5


async def test_crash_after_n_requests_calls_the_crash_hook(
    start_sim: StartSim, http: aiohttp.ClientSession
) -> None:
    crashed = asyncio.Event()
    base = await start_sim(sim_faults=Faults(crash_after=2), on_crash=crashed.set)
    await post(http, f"{base}/v1/completions", {"prompt": "x", "max_tokens": 1})
    assert not crashed.is_set()
    await post(http, f"{base}/v1/completions", {"prompt": "x", "max_tokens": 1})
    await asyncio.wait_for(crashed.wait(), 5)


async def test_slow_factor_slows_steps(start_sim: StartSim, http: aiohttp.ClientSession) -> None:
    async def itl_sum(base: str) -> float:
        body = {"prompt": "x", "max_tokens": 20, "ignore_eos": True}
        await post(http, f"{base}/v1/completions", body)
        return (await scrape(http, base))["vllm:inter_token_latency_seconds_sum{engine=0}"]

    fast = await itl_sum(await start_sim(sim_time_scale=1.0))
    slow = await itl_sum(await start_sim(sim_time_scale=1.0, sim_faults=Faults(slow_factor=5)))
    assert slow > fast


async def test_streamed_prefill_leg_does_not_leak_kv(
    start_sim: StartSim, http: aiohttp.ClientSession
) -> None:
    prefill = await start_sim(kv_transfer=kvt("kv_producer"))
    body = {"prompt": PROMPT, "max_tokens": 1, "stream": True,
            "kv_transfer_params": {"do_remote_decode": True}}  # fmt: skip
    async with http.post(f"{prefill}/v1/completions", json=body) as resp:
        assert resp.status == 200
        await resp.read()
    assert (await scrape(http, prefill))["vllm:kv_cache_usage_perc{engine=0}"] == 0
