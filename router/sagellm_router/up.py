"""``sagellm up``: a local fleet — simulator engines, the router, and a demo workload.

By default: a General pool (``--general`` engines serving ``tiny``) and a disaggregated pool
(``--prefill`` + ``--decode`` engines serving ``tiny-pd``). In the disaggregated pool, prompts of
at least ``PD_THRESHOLD`` uncached tokens run prefill-then-decode (the demo sends some long
ones); shorter ones go straight to a Decode engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import click

from sagellm_router.demo import demo_bodies, render, run_demo, summarize

PD_CONFIG = json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_both"})
PD_THRESHOLD = 256


@dataclass
class Child:
    """A child process of the fleet and the URL it serves."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(child: Child, path: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise click.ClickException(f"{child.name} exited with code {child.proc.returncode}")
        try:
            with urllib.request.urlopen(child.url + path, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise click.ClickException(f"{child.name} did not become healthy at {child.url}{path}")


def start_engine(name: str, model: str, time_scale: float, *extra: str) -> Child:
    port = free_port()
    argv = [sys.executable, "-m", "sagellm_sim", "--model", model, "--host", "127.0.0.1",
            "--port", str(port), "--sim-profile", "tiny", "--sim-time-scale", str(time_scale),
            "--sim-log-level", "warning", *extra]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return Child(name, proc, f"http://127.0.0.1:{port}")


def fleet_config(
    port: int, strategy: str, general: list[Child], prefill: list[Child], decode: list[Child]
) -> dict[str, object]:
    """The router's static config for the fleet (pure)."""

    def endpoints(children: list[Child], role: str) -> list[dict[str, str]]:
        return [{"url": c.url, "role": role, "instance": c.name} for c in children]

    pools: list[dict[str, object]] = []
    if general:
        pools.append({"name": "general", "model": "tiny", "routing": strategy,
                      "endpoints": endpoints(general, "General")})  # fmt: skip
    if prefill or decode:
        pd = endpoints(prefill, "Prefill") + endpoints(decode, "Decode")
        pools.append({"name": "pd", "model": "tiny-pd", "routing": strategy, "endpoints": pd,
                      "scheduling": {"pdThresholdInputTokens": PD_THRESHOLD}})  # fmt: skip
    return {
        # A local fleet has no load balancer to take the router out first: no pre-stop delay.
        "server": {
            "host": "127.0.0.1",
            "port": port,
            "shutdown_timeout_s": 5,
            "prestop_delay_s": 0,
        },
        "discovery": {"type": "static", "pools": pools},
        "scrape": {"interval_s": 0.5},
    }


def start_fleet(
    workdir: Path, port: int, strategy: str, counts: tuple[int, int, int], time_scale: float
) -> list[Child]:
    n_general, n_prefill, n_decode = counts
    general = [start_engine(f"general-{i}", "tiny", time_scale) for i in range(n_general)]
    pd_args = ("--kv-transfer-config", PD_CONFIG)
    prefill = [
        start_engine(f"prefill-{i}", "tiny-pd", time_scale, *pd_args) for i in range(n_prefill)
    ]
    decode = [start_engine(f"decode-{i}", "tiny-pd", time_scale, *pd_args) for i in range(n_decode)]
    children = general + prefill + decode
    try:
        for child in children:
            wait_healthy(child, "/health")
        config = workdir / "router.yaml"
        config.write_text(json.dumps(fleet_config(port, strategy, general, prefill, decode)))
        argv = [sys.executable, "-m", "sagellm_router", "--config", str(config),
                "--log-level", "warning"]  # fmt: skip
        children.append(Child("router", subprocess.Popen(argv), f"http://127.0.0.1:{port}"))
        wait_healthy(children[-1], "/ready")
    except BaseException:
        stop_fleet(children)  # never leave engines behind
        raise
    return children


def stop_fleet(children: list[Child]) -> None:
    for child in reversed(children):
        if child.proc.poll() is None:
            child.proc.terminate()
    for child in children:
        try:
            child.proc.wait(10)
        except subprocess.TimeoutExpired:
            child.proc.kill()


def demo(url: str, models: list[str], requests: int, concurrency: int) -> None:
    bodies = demo_bodies(models, requests)
    with click.progressbar(length=len(bodies), label="demo workload") as bar:
        outcomes, wall = asyncio.run(run_demo(url, bodies, concurrency, lambda: bar.update(1)))
    click.echo(render(summarize(outcomes, wall)))


@click.command("up")
@click.option("--general", default=2, show_default=True, help="engines in the General pool")
@click.option("--prefill", default=1, show_default=True, help="Prefill engines (pool tiny-pd)")
@click.option("--decode", default=1, show_default=True, help="Decode engines (pool tiny-pd)")
@click.option("--port", default=8080, show_default=True, help="router port")
@click.option("--strategy", default="prefix_aware", show_default=True)
@click.option("--requests", "n_requests", default=60, show_default=True)
@click.option("--concurrency", default=8, show_default=True)
@click.option("--time-scale", default=0.05, show_default=True, help="simulator speed-up")
@click.option("--demo-only", is_flag=True, help="exit after the demo instead of serving")
def up(
    general: int,
    prefill: int,
    decode: int,
    port: int,
    strategy: str,
    n_requests: int,
    concurrency: int,
    time_scale: float,
    demo_only: bool,
) -> None:
    """Start simulator engines and the router locally, run a demo, then keep serving."""
    if general + decode == 0:
        raise click.UsageError("need at least one General or Decode engine to serve requests")
    with tempfile.TemporaryDirectory(prefix="sagellm-up-") as tmp:
        click.echo(f"starting {general} general, {prefill} prefill, {decode} decode engines ...")
        children = start_fleet(Path(tmp), port, strategy, (general, prefill, decode), time_scale)
        try:
            url = children[-1].url
            models = (["tiny"] if general else []) + (["tiny-pd"] if decode else [])
            click.echo(f"router ready at {url} (strategy {strategy})")
            demo(url, models, n_requests, concurrency)
            if not demo_only:
                click.echo(f"\nserving at {url}/v1 — try:\n  curl {url}/v1/chat/completions "
                           "-H 'Content-Type: application/json' -d '{\"model\": \"tiny\", "
                           "\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}'\n"
                           "press Ctrl-C to stop")  # fmt: skip
                stop = {signal.SIGINT, signal.SIGTERM}
                signal.pthread_sigmask(signal.SIG_BLOCK, stop)
                with contextlib.suppress(KeyboardInterrupt):
                    signal.sigwait(stop)
        finally:
            stop_fleet(children)
