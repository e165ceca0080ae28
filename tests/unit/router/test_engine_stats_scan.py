"""The router's engine load comes from core's ``/metrics`` scanner (the one the operator's drain
uses): the same numbers as a full Prometheus parse, and the same idle count as the drain."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from sagellm_core.engine_metrics import read_engine_page, requests_in_engine
from sagellm_router.config import ScrapeSettings
from sagellm_router.stats.engine import EngineStats, parse_engine_stats
from sagellm_router.stats.scraper import Scraper
from sagellm_sim.config import SimConfig
from sagellm_sim.server import build_app


def reference(text: str) -> dict[str, float]:
    """Sum of every sample per name, by prometheus_client's parser."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


TRICKY = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="my model {v2}"} 3.0
vllm:num_requests_running{engine="1",model_name="my model {v2}"} 2.0
vllm:num_requests_waiting 7 1700000000000
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.5
vllm:prefix_cache_hits_total{engine="0"} 10
vllm:prefix_cache_hits_created{engine="0"} 1.7e9
vllm:prefix_cache_queries_total{engine="0"} 40
vllm:num_requests_running_extra 99
"""


def test_tricky_page_matches_the_reference_parser() -> None:
    stats = parse_engine_stats(TRICKY, at=5.0)
    ref = reference(TRICKY)
    assert stats == EngineStats(
        running=ref["vllm:num_requests_running"],
        waiting=ref["vllm:num_requests_waiting"],
        kv_usage=0.5,
        prefix_hits=ref["vllm:prefix_cache_hits_total"],
        prefix_queries=ref["vllm:prefix_cache_queries_total"],
        at=5.0,
    )


OLD_NAMES = """vllm:num_requests_running 1
vllm:gpu_cache_usage_perc{engine="0"} 0.75
vllm:gpu_prefix_cache_hits_total 4
vllm:gpu_prefix_cache_queries_total 8
"""
BOTH_KV = (
    "vllm:kv_cache_usage_perc 0.1\nvllm:gpu_cache_usage_perc 0.9\nvllm:num_requests_waiting 2\n"
)


@pytest.mark.parametrize(
    ("text", "kv", "hits", "queries"),
    [(TRICKY, 0.5, 10.0, 40.0), (OLD_NAMES, 0.75, 4.0, 8.0), (BOTH_KV, 0.1, 0.0, 0.0)],
)
def test_router_and_drain_read_the_page_with_one_parser(
    text: str, kv: float, hits: float, queries: float
) -> None:
    stats, page = parse_engine_stats(text), read_engine_page(text)
    assert (stats.kv_usage, stats.prefix_hits, stats.prefix_queries) == (kv, hits, queries)
    assert stats.running + stats.waiting == requests_in_engine(text) == page.in_engine


async def test_real_simulator_page_matches_the_reference_parser() -> None:
    app = build_app(SimConfig(model="m", sim_time_scale=0.01, max_model_len=512))
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        prompt = "the same long prompt " * 20
        for _ in range(2):
            resp = await client.post(
                "/v1/completions", json={"model": "m", "prompt": prompt, "max_tokens": 2}
            )
            assert resp.status == 200
        text = await (await client.get("/metrics")).text()
    stats, ref = parse_engine_stats(text), reference(text)
    assert stats.prefix_queries == ref["vllm:prefix_cache_queries_total"] > 0
    assert stats.prefix_hits == ref["vllm:prefix_cache_hits_total"] > 0
    assert stats.running == ref["vllm:num_requests_running"]
    assert stats.waiting == ref["vllm:num_requests_waiting"]


async def test_scraper_notes_the_routers_own_in_flight_at_scrape_time() -> None:
    app = build_app(SimConfig(model="m", sim_time_scale=0.01, max_model_len=512))
    async with (
        TestServer(app, host="127.0.0.1", port=0) as server,
        aiohttp.ClientSession() as session,
    ):
        url = str(server.make_url("")).rstrip("/")
        stats: dict[str, EngineStats] = {}
        own = {url: 3}
        scraper = Scraper(session, ScrapeSettings(), lambda: 7.0, stats, own.__getitem__)
        await scraper.scrape_all([url])
        assert stats[url].own_in_flight == 3
        assert stats[url].at == 7.0
        # the idle engine runs nothing: none of it belongs to other routers
        assert stats[url].others(stats[url].running) == 0.0
        await scraper.scrape_all([])  # the endpoint left: its numbers go
        assert stats == {}
