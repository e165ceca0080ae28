"""`sagellm sim` / `python -m sagellm_sim` as real processes: start-up delay, crash, bad flags."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

from sim_process import SAGELLM, health, start, stop, wait_healthy


def _complete(base: str) -> int:
    body = json.dumps({"prompt": "x", "max_tokens": 1}).encode()
    req = urllib.request.Request(f"{base}/v1/completions", data=body,
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        status: int = resp.status
        return status


def test_startup_delay_refuses_connections_then_serves() -> None:
    proc, base = start("m", "--sim-startup-delay", "2", "--max-model-len", "1024")
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # wait for the condition: the simulated start-up began
            if b"simulating start-up" in line:
                break
        assert health(base) is None  # nothing listens yet: connection refused, like vLLM
        wait_healthy(proc, base)
        assert health(base) == 200
    finally:
        stop(proc)


def test_crash_after_n_requests_exits_the_process() -> None:
    proc, base = start("m", "--sim-crash-after", "2", "--sim-time-scale", "0.01",
                       "--max-model-len", "1024")  # fmt: skip
    try:
        wait_healthy(proc, base)
        assert _complete(base) == 200
        assert _complete(base) == 200
        assert proc.wait(10) != 0
    finally:
        stop(proc)


def test_python_module_entry_point_and_bad_flags() -> None:
    out = subprocess.run([sys.executable, "-m", "sagellm_sim", "--help"], capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert "--sim-time-scale" in out.stdout
    assert "--tensor-parallel-size" in out.stdout
    bad = subprocess.run([SAGELLM, "sim", "m", "--kv-transfer-config", '{"kv_role":"x"}'],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2
    assert "kv_connector" in bad.stderr
    too_big = subprocess.run([SAGELLM, "sim", "m", "--sim-profile", "llama-3.1-70b-h100"],
                             capture_output=True, text=True)  # fmt: skip
    assert too_big.returncode == 2
    assert "--tensor-parallel-size" in too_big.stderr
