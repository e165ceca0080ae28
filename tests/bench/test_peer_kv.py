"""vllm-router's kv_aware as a peer: its KV-event flags, read from the engines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

import pytest

from sagellm_router.bench import peer_kv
from sagellm_router.bench.fleet import BenchError, Contender, router_argv


@contextmanager
def engine(sources: dict[str, Any] | None) -> Iterator[str]:
    """An HTTP server answering ``GET /kv_event_sources`` like a simulator (404: no events)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(sources).encode()
            self.send_response(200 if sources is not None else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            """No access log: the test's output stays readable."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def rank(port: int, replay: int | None) -> dict[str, Any]:
    return {"endpoint": f"tcp://0.0.0.0:{port}",
            "replay_endpoint": f"tcp://*:{replay}" if replay else None}  # fmt: skip


def test_every_engine_and_rank_becomes_a_source() -> None:
    with (
        engine({"0": rank(5001, 6001)}) as a,
        engine({"1": rank(5003, 6003), "0": rank(5002, 6002)}) as b,
    ):
        args = peer_kv.event_source_args([a, b], 16, "m")
    assert args == [
        "--kv-event-source", f"{a}=tcp://127.0.0.1:5001",
        "--kv-event-replay-source", f"{a}=tcp://127.0.0.1:6001",
        "--kv-event-source", f"{b}=tcp://127.0.0.1:5002,tcp://127.0.0.1:5003",
        "--kv-event-replay-source", f"{b}=tcp://127.0.0.1:6002,tcp://127.0.0.1:6003",
        "--kv-event-block-size", "16", "--kv-event-model", "m",
    ]  # fmt: skip


def test_no_replay_socket_means_no_replay_flag() -> None:
    with engine({"0": rank(5001, None)}) as a:
        args = peer_kv.event_source_args([a], 32)
    assert "--kv-event-replay-source" not in args
    assert args[-4:-2] == ["--kv-event-block-size", "32"]


@pytest.mark.parametrize("sources", [None, {}])
def test_an_engine_without_events_is_named(sources: dict[str, Any] | None) -> None:
    with engine(sources) as a, pytest.raises(BenchError, match=f"{a} publishes no KV events"):
        peer_kv.event_source_args([a], 16)


def test_only_vllm_routers_kv_aware_gets_the_flags(tmp_path: Any) -> None:
    with engine({"0": rank(5001, 6001)}) as a:
        ours = Contender("ours", "kv_aware")
        cache_aware = Contender("peer", "cache_aware")
        assert peer_kv.with_event_sources(ours, [a], 16) is ours
        assert peer_kv.with_event_sources(cache_aware, [a], 16) is cache_aware
        peer = peer_kv.with_event_sources(Contender("peer", "kv_aware"), [a], 16)
    argv = router_argv(peer, [a], 1234, tmp_path)
    assert argv[argv.index("--policy") + 1] == "kv_aware"
    assert argv[argv.index("--kv-event-source") + 1] == f"{a}=tcp://127.0.0.1:5001"
