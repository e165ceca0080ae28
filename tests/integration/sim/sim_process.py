"""Start `sagellm sim` as a real subprocess and wait until it listens."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.ports import free_port

SAGELLM = str(Path(sys.executable).parent / "sagellm")


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
