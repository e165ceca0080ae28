"""A ``kv_aware`` pool's engines publish KV-cache events where the operator says they do.

The kubelet runs each pod's real argv (``sagellm sim``); the test asks every started engine where
it publishes (``GET /kv_event_sources``, the route the router's ``kv_aware`` strategy reads), sends
it a prompt, and replays the publisher's buffer from the replay socket: BlockStored events arrive
on the fixed ports the pool's NetworkPolicy opens to the routers.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import msgpack
import zmq
from operator_harness import cluster, operator_running, sample

from e2e.waiting import eventually
from sagellm_core.api import labels as L
from sagellm_core.vllm_args import KV_EVENTS_PORT, KV_EVENTS_REPLAY_PORT

Obj = dict[str, Any]
END_SEQ = (-1).to_bytes(8, "big", signed=True)
PROMPT = " ".join(f"word{j}" for j in range(300))


def _kv_pool(name: str, routing: str) -> Obj:
    pool = sample("simulator-pool", name)
    pool["spec"]["scheduling"]["routing"] = routing
    return pool


async def _ready_urls(c: Any, name: str, n: int) -> list[str] | None:
    eps = ((await c.pool(name)).get("status") or {}).get("endpoints") or []
    urls = [e["url"] for e in eps if e.get("ready")]
    return urls if len(urls) == n else None


def _replayed_events(replay: str) -> list[str]:
    """Every buffered event's type, replayed from sequence 0."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.connect(replay)
    sock.send_multipart([b"", (0).to_bytes(8, "big")])
    kinds: list[str] = []
    while sock.poll(10_000):
        _, _topic, seq, payload = sock.recv_multipart()
        if seq == END_SEQ:
            break
        _ts, events, _rank = msgpack.unpackb(payload)
        kinds += [e[0] if isinstance(e, list) else e["type"] for e in events]
    sock.close(linger=0)
    ctx.term()
    return kinds


async def _sources(http: aiohttp.ClientSession, url: str) -> Obj:
    async with http.get(f"{url}/kv_event_sources") as resp:
        assert resp.status == 200
        body: Obj = await resp.json()
        return body


async def test_kv_aware_engines_publish_on_the_operators_ports() -> None:
    async with (
        cluster(simulate=True) as c,
        operator_running(c.emu, resync=0.5),
        aiohttp.ClientSession() as http,
    ):
        await c.create_pool(_kv_pool("kv", "kv_aware"))
        urls = await eventually(lambda: _ready_urls(c, "kv", 2), "two ready engines", 90)
        for url in urls:
            (source,) = (await _sources(http, url)).values()
            host = url.split("//", 1)[1].rsplit(":", 1)[0]
            assert source["endpoint"] == f"tcp://{host}:{KV_EVENTS_PORT}"
            assert source["replay_endpoint"] == f"tcp://{host}:{KV_EVENTS_REPLAY_PORT}"
            body = {"model": "tiny", "prompt": PROMPT, "max_tokens": 1}
            async with http.post(f"{url}/v1/completions", json=body) as resp:
                assert resp.status == 200, await resp.text()
            kinds = await asyncio.to_thread(_replayed_events, source["replay_endpoint"])
            assert "BlockStored" in kinds, kinds


async def test_other_pools_engines_publish_nothing() -> None:
    async with (
        cluster(simulate=True) as c,
        operator_running(c.emu, resync=0.5),
        aiohttp.ClientSession() as http,
    ):
        await c.create_pool(_kv_pool("plain", "prefix_aware"))
        urls = await eventually(lambda: _ready_urls(c, "plain", 2), "two ready engines", 90)
        url = urls[0]
        assert await _sources(http, url) == {}
        pods = await c.pods(f"{L.LABEL_POOL}=plain")
        assert all("--kv-events-config" not in p["spec"]["containers"][0]["args"] for p in pods)
