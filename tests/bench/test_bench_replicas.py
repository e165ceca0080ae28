"""Two router replicas behind a round-robin client: the load generator alternates between them,
and the routing scenario adds an ``-x2`` contender for each replicated strategy."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from click.testing import CliRunner

from sagellm_router.bench import loadgen, oracle
from sagellm_router.bench.cli import bench
from sagellm_router.bench.fleet import our_config, replica_set
from sagellm_router.bench.options import BenchOptions
from sagellm_router.bench.scenarios import routing
from sagellm_router.config import RouterSettings


async def _replica(name: str, seen: list[str]) -> TestServer:
    """A stand-in router replica: records each request, streams one token and usage."""

    async def chat(request: web.Request) -> web.StreamResponse:
        seen.append(name)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        token = {"choices": [{"delta": {"content": " hi"}}]}
        use = {"choices": [], "usage": {"completion_tokens": 1, "prompt_tokens": 3}}
        for event in (token, use):
            await resp.write(f"data: {json.dumps(event)}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.fixture
async def replicas() -> AsyncIterator[tuple[list[str], list[str]]]:
    seen: list[str] = []
    servers = [await _replica(n, seen) for n in ("r0", "r1")]
    yield [str(s.make_url("")).rstrip("/") for s in servers], seen
    for s in servers:
        await s.close()


async def test_open_loop_alternates_between_replicas(
    replicas: tuple[list[str], list[str]],
) -> None:
    urls, seen = replicas
    # sessions start 20 ms apart, one turn each: the order of arrival is the order sent
    sessions = [{"sid": i, "start_s": 0.02 * i, "system": "s", "klass": "default", "headers": {},
                 "think_s": 0.0, "turns": [{"user": "q", "max_tokens": 1}]}
                for i in range(6)]  # fmt: skip
    spec = {"targets": urls, "model": "m", "sessions": sessions, "mode": "open"}
    result = await loadgen.run(spec)
    assert all(r[-1] is None for r in result["records"])  # no errors
    assert seen == ["r0", "r1"] * 3


def test_replicas_add_replicated_contenders() -> None:
    one = routing.config_for(BenchOptions(quick=True))
    two = routing.config_for(BenchOptions(quick=True, replicas=2))
    names = [c.name for c in two.contenders(peer_ok=False)]
    assert names == [c.name for c in one.contenders(peer_ok=False)] + [
        "ours/prefix_aware-x2", "ours/kv_aware-x2"
    ]  # fmt: skip
    doubled = [c for c in two.contenders(peer_ok=False) if c.label]
    assert [c.options["replicas"] for c in doubled] == [2, 2]
    assert [c.strategy for c in doubled] == ["prefix_aware", "kv_aware"]
    assert [c.options["replica_sync"] for c in doubled] == [False, True]


def test_synced_replicas_are_each_others_peers() -> None:
    kv = routing.our_contender("kv_aware", 3)
    configs = [our_config(c, ["http://e:1"], 80) for c in replica_set(kv)]
    syncs = [RouterSettings.model_validate(c).routing.replica_sync for c in configs]
    ports = [s.port for s in syncs]
    assert len(set(ports)) == 3
    for sync in syncs:
        assert sorted(sync.peers) == sorted(f"127.0.0.1:{p}" for p in ports if p != sync.port)
    prefix = routing.our_contender("prefix_aware", 2)
    assert replica_set(prefix) == [prefix, prefix]
    assert "routing" not in our_config(prefix, ["http://e:1"], 80)


def test_workload_and_load_options_narrow_the_run() -> None:
    cfg = routing.config_for(BenchOptions(workloads=("shared_prefix",), loads=(0.8, 0.5)))
    assert (cfg.workloads, cfg.loads) == (("shared_prefix",), (0.5, 0.8))
    assert "--kv-events-config" in cfg.fleet.extra
    assert ("VLLM_SERVER_DEV_MODE", "1") in cfg.fleet.env


def test_routing_options_are_refused_elsewhere(tmp_path: Path) -> None:
    for extra in (["--replicas", "2"], ["--load", "0.5"], ["--strategy", "kv_aware"],
                  ["--peer", "cache_aware"]):  # fmt: skip
        result = CliRunner().invoke(bench, ["slo", "--out", str(tmp_path), *extra])
        assert result.exit_code != 0
        assert "apply to the routing scenario only" in result.output


def test_peer_option_picks_the_vllm_router_policies() -> None:
    cfg = routing.config_for(BenchOptions(strategies=("kv_aware",), peers=("cache_aware",)))
    assert [c.name for c in cfg.contenders(peer_ok=True)] == ["ours/kv_aware", "peer/cache_aware"]
    assert [c.name for c in cfg.contenders(peer_ok=False)] == ["ours/kv_aware"]


def test_strategy_option_picks_ours_and_keeps_plugins_loadable() -> None:
    cfg = routing.config_for(BenchOptions(strategies=("kv_aware_events", "oracle"), replicas=2))
    cs = cfg.contenders(peer_ok=False)
    assert [c.name for c in cs] == ["ours/kv_aware_events", "ours/oracle",
                                    "ours/kv_aware_events-x2"]  # fmt: skip
    assert cs[1].options["config"] == {"plugins": [oracle.PLUGIN]}
    config = our_config(cs[2], ["http://e0"], 1234)
    assert config["discovery"]["pools"][0]["routing"] == "kv_aware_events"
    assert config["plugins"] == [routing.PLUGINS["kv_aware_events"]]
