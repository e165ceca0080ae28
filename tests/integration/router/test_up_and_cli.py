"""`sagellm up --demo-only` end to end, and `sagellm router` as a process with graceful shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
from click.testing import CliRunner
from router_procs import free_port, spawn_router, start_sims, wait_http

from sagellm_router.up import up


def test_up_demo_only_runs_fleet_and_prints_results() -> None:
    port = free_port()
    result = CliRunner().invoke(
        up, ["--demo-only", "--port", str(port), "--requests", "24", "--strategy", "round_robin"]
    )
    assert result.exit_code == 0, result.output
    assert "24 (0 failed)" in result.output
    assert "TTFT p50/p99" in result.output
    table = [line.rsplit(None, 1) for line in result.output.splitlines() if " @ " in line]
    rows = {name: int(count) for name, count in table if count.isdigit()}
    assert rows["tiny @ general-0"] + rows["tiny @ general-1"] == 12
    # long prompts run prefill-then-decode, short ones go straight to the decode engine
    assert rows["tiny-pd @ prefill-0 -> decode-0"] == 6
    assert rows["tiny-pd @ decode-0"] == 6


async def test_router_process_drains_streams_on_sigterm(tmp_path: Path) -> None:
    (sim,) = start_sims(1, time_scale=0.2)
    port = free_port()
    config = {
        "server": {"host": "127.0.0.1", "port": port, "shutdown_timeout_s": 20},
        "discovery": {"type": "static", "pools": [
            {"name": "p", "model": "tiny", "endpoints": [{"url": sim.url}]}]},
    }  # fmt: skip
    (tmp_path / "r.yaml").write_text(json.dumps(config))
    router = spawn_router(tmp_path / "r.yaml")
    url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_http, url + "/ready", router)
        body = {"model": "tiny", "prompt": "drain me", "max_tokens": 100, "ignore_eos": True,
                "stream": True}  # fmt: skip
        async with aiohttp.ClientSession() as s, s.post(url + "/v1/completions", json=body) as r:
            first = await r.content.readany()
            router.send_signal(signal.SIGTERM)
            text = (first + await r.read()).decode()
        assert text.rstrip().endswith("data: [DONE]")
        assert '"error"' not in text
        assert text.count('"finish_reason": null') + text.count('"finish_reason":null') >= 90
        assert await asyncio.to_thread(router.wait, 20) == 0
        assert router.stderr is not None
        logs = [json.loads(line) for line in router.stderr.read().decode().splitlines()]
        assert any("draining" in entry["msg"] for entry in logs)
    finally:
        if router.poll() is None:
            router.kill()
        sim.stop()


def test_router_cli_reports_bad_config(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("retries: {max_attempts: 0}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "sagellm_router", "--config", str(tmp_path / "bad.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "retries.max_attempts" in proc.stderr
