"""Start `sagellm sim` as a real subprocess and wait until it listens."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.ports import free_port

SAGELLM = str(Path(sys.executable).parent / "sagellm")
# launch(*extra_args, max_model_len=..., env=...) -> (process, port) of a healthy server
Launch = Callable[..., tuple[subprocess.Popen[bytes], int]]


def health(base: str) -> int | None:
    """HTTP status of /health, or None while the port refuses connections."""
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=2) as resp:
            status: int = resp.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, ConnectionError):
        return None


def start(*args: str, port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    port = port or free_port()
    cmd = [SAGELLM, "sim", *args, "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return proc, f"http://127.0.0.1:{port}"


def wait_healthy(proc: subprocess.Popen[bytes], base: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while health(base) != 200:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"simulator exited with {proc.returncode}: {err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"simulator at {base} not healthy within {within}s")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def engine_command(kind: str, port: int, max_model_len: int, extra: tuple[str, ...]) -> list[str]:
    """``sagellm sim`` or, for ``vllm``, a real vLLM from ``SAGELLM_VLLM_PYTHON`` serving
    ``SAGELLM_VLLM_LONG_MODEL`` (the tiny model with an 8192-token context); skips without them.
    """
    common = ["--served-model-name", "tiny", "--max-model-len", str(max_model_len),
              "--host", "127.0.0.1", "--port", str(port), *extra]  # fmt: skip
    if kind == "sim":
        return [SAGELLM, "sim", "tiny", "--sim-profile", "tiny", *common]
    python, model = os.environ.get("SAGELLM_VLLM_PYTHON"), os.environ.get("SAGELLM_VLLM_LONG_MODEL")
    if not python or not model:
        pytest.skip("set SAGELLM_VLLM_PYTHON and SAGELLM_VLLM_LONG_MODEL (run-conformance.sh)")
    return [python, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
            "--dtype", "bfloat16", *common]  # fmt: skip


def start_engine(
    kind: str, extra: tuple[str, ...], max_model_len: int, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], int]:
    """Start an engine server and wait (up to 300 s: vLLM on 2 cores) until /health is 200."""
    port = free_port()
    full_env = {"VLLM_CPU_KVCACHE_SPACE": "1", **os.environ, **env}
    # Its own process group, so kill_group ends vLLM's engine processes too (as a container
    # runtime does), not only the API server that the test signals.
    proc = subprocess.Popen(engine_command(kind, port, max_model_len, extra), env=full_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while health(f"http://127.0.0.1:{port}") != 200:
        if proc.poll() is not None:
            raise AssertionError(f"server exited during start-up ({proc.returncode})")
        if time.monotonic() > deadline:
            kill_group(proc)
            raise AssertionError("server not healthy within 300 s")
        time.sleep(0.5)
    return proc, port


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the server's whole process group (vLLM's engine core and workers included)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
