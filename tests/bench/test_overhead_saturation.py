"""The overhead scenario's saturation loop and its fake engine (bench/router_overhead.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from sagellm_router.bench.scenarios.overhead import load_script, same_policy_ratios
from sagellm_router.stats.engine import parse_engine_stats


class Counting(asyncio.Protocol):
    """The script's fake engine, counting the POSTs it answers."""

    answered = 0

    def __init__(self, inner: asyncio.Protocol) -> None:
        self.inner = inner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        Counting.answered += data.count(b"POST ")
        self.inner.data_received(data)


async def test_closed_loop_times_every_counted_request_and_skips_the_warm_up() -> None:
    ro = load_script()
    server = await asyncio.get_running_loop().create_server(
        lambda: Counting(ro.EngineProtocol()), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    try:
        rps, done, latencies = await ro.closed_loop(port, 0.3, 4, ro.make_bodies(8), warmup_s=0.2)
    finally:
        server.close()
    assert done == len(latencies) > 0
    assert latencies == sorted(latencies)
    assert latencies[0] > 0
    assert Counting.answered > done  # the warm-up's requests were sent, not counted
    assert rps > 0


def test_fake_engine_metrics_page_is_one_the_router_reads() -> None:
    page = load_script().metrics_page()
    stats = parse_engine_stats(page.decode())
    assert (stats.running, stats.waiting, stats.kv_usage) == (3.0, 0.0, 0.25)
    assert (stats.prefix_hits, stats.prefix_queries) == (6000.0, 9000.0)
    assert len(page) > 30_000  # the size of a vLLM page, so the scrape costs what it does


def test_saturation_p99_is_compared_with_the_same_kind_of_peer_policy() -> None:
    rows: list[dict[str, Any]] = [
        {"contender": "ours/round_robin", "kind": "ours", "rps": 5000.0, "sat_p99_ms": 12.0},
        {"contender": "ours/prefix_aware", "kind": "ours", "rps": 4000.0, "sat_p99_ms": 10.0},
        {"contender": "peer/round_robin", "kind": "peer", "rps": 15000.0, "sat_p99_ms": 4.0},
        {"contender": "peer/cache_aware", "kind": "peer", "rps": 3000.0, "sat_p99_ms": 20.0},
    ]
    same_policy_ratios(rows)
    assert rows[0]["sat_p99_vs_peer_same"] == 3.0
    assert rows[1]["sat_p99_vs_peer_same"] == 0.5
    assert "sat_p99_vs_peer_same" not in rows[2]
