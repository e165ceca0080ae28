"""Real processes for router tests: simulator engines and the `sagellm router` command."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

from tests.ports import free_port


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer 200 within {timeout}s")


@dataclass
class Proc:
    proc: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_sims(n: int, model: str = "tiny", *extra: str, time_scale: float = 0.01) -> list[Proc]:
    """Start ``n`` simulator engines in parallel and wait for their /health."""
    procs = []
    for _ in range(n):
        port = free_port()
        argv = [sys.executable, "-m", "sagellm_sim", "--model", model, "--port", str(port),
                "--host", "127.0.0.1", "--sim-profile", "tiny", "--sim-time-scale", str(time_scale),
                "--sim-log-level", "warning", *extra]  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        procs.append(Proc(proc, f"http://127.0.0.1:{port}"))
    try:
        for p in procs:
            wait_http(p.url + "/health", p.proc)
    except BaseException:
        for p in procs:  # never leave engines behind when one fails to start
            p.stop()
        raise
    return procs


def spawn_router(config: object) -> subprocess.Popen[bytes]:
    """``python -m sagellm_router --config CONFIG`` with its JSON logs on a pipe."""
    argv = [sys.executable, "-m", "sagellm_router", "--config", str(config)]
    return subprocess.Popen(argv, stderr=subprocess.PIPE)
