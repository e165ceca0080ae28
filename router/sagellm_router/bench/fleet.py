"""Processes of a benchmark run: simulated engines, routers under test, the load generator.

Everything is a child process of the harness (``sys.executable -m ...`` or the ``vllm-router``
binary), started on 127.0.0.1 with free ports and stopped (terminate, then kill) on exit.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

MODEL = "bench-model"
PEER_BINARY = "vllm-router"


class BenchError(RuntimeError):
    """A benchmark process failed to start or answer."""


@dataclass(frozen=True)
class Contender:
    """A router under test: ``ours`` (a routing strategy), ``peer`` (a vllm-router policy) or
    ``direct`` (no router; the client spreads requests round robin).

    ``label`` (default: the strategy) names it; ``options`` shape our router's config:
    ``pool`` (merged into the pool, e.g. ``scheduling``), ``config`` (top-level sections),
    ``roles`` (one per engine URL, e.g. Prefill/Decode) and ``endpoint`` (fields of every
    endpoint, e.g. ``max_concurrency``), or, for a peer, ``argv`` (more vllm-router flags);
    ``replicas`` (default 1) starts that many identical routers, which the load generator uses
    in round robin; with ``replica_sync`` (true) they share their ``kv_aware`` picks
    (``routing.replica_sync``, each other's ports as peers).
    """

    kind: str
    strategy: str
    label: str = ""
    options: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def name(self) -> str:
        return "direct" if self.kind == "direct" else f"{self.kind}/{self.label or self.strategy}"

    @property
    def slug(self) -> str:
        return self.name.replace("/", "-")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Poll ``url`` until it answers 200; fail early if ``proc`` exits."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise BenchError(f"{proc.args!r} exited with {proc.returncode} before {url} answered")
        try:
            if http_get(url, timeout=1.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchError(f"{url} did not answer 200 within {timeout:.0f} s")


def stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` (all its threads) from ``/proc`` (None where
    there is no ``/proc`` or the process is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spawn(
    argv: list[str], log: Path, cpus: set[int] | None = None, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with output to ``log``, optionally pinned to ``cpus`` (Linux only), with
    ``env`` added to the harness's environment."""
    pre: Callable[[], None] | None = None
    if cpus and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        pre = lambda: os.sched_setaffinity(0, cpus)  # noqa: E731
    full = {**os.environ, **env} if env else None
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, preexec_fn=pre, env=full
        )


@dataclass(frozen=True)
class FleetSpec:
    engines: int = 8
    profile: str = "llama-3.1-8b-h100"
    time_scale: float = 1.0
    max_num_seqs: int = 32
    gpu_blocks: int | None = None
    max_model_len: int = 16384
    block_size: int = 16  # tokens per KV block (vLLM's default)
    extra: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # added to every engine's environment


@dataclass
class Fleet:
    urls: list[str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def prefix_counters(self) -> tuple[float, float]:
        """Sum over engines of (prefix_cache_hits_total, prefix_cache_queries_total)."""
        hits = queries = 0.0
        for url in self.urls:
            for line in http_get(url + "/metrics")[1].splitlines():
                if line.startswith("vllm:prefix_cache_hits_total"):
                    hits += float(line.rsplit(" ", 1)[1])
                elif line.startswith("vllm:prefix_cache_queries_total"):
                    queries += float(line.rsplit(" ", 1)[1])
        return hits, queries

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until no engine has running or waiting requests (leftovers of a run)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            busy = 0.0
            for url in self.urls:
                for line in http_get(url + "/metrics")[1].splitlines():
                    if line.startswith(("vllm:num_requests_running", "vllm:num_requests_waiting")):
                        busy += float(line.rsplit(" ", 1)[1])
            if busy == 0:
                return
            time.sleep(0.2)


@contextmanager
def fleet(spec: FleetSpec, workdir: Path, seed: int) -> Iterator[Fleet]:
    """Start ``spec.engines`` simulators; yield their URLs; stop them on exit."""
    ports = free_ports(spec.engines)
    f = Fleet([f"http://127.0.0.1:{p}" for p in ports])
    try:
        for i, port in enumerate(ports):
            argv = [sys.executable, "-m", "sagellm_sim", "--model", MODEL, "--host", "127.0.0.1",
                    "--port", str(port), "--sim-profile", spec.profile,
                    "--sim-time-scale", str(spec.time_scale), "--max-num-seqs",
                    str(spec.max_num_seqs), "--max-model-len", str(spec.max_model_len),
                    "--block-size", str(spec.block_size), "--sim-seed", str(seed),
                    "--sim-log-level", "warning",
                    *spec.extra]  # fmt: skip
            if spec.gpu_blocks:
                argv += ["--num-gpu-blocks-override", str(spec.gpu_blocks)]
            f.procs.append(spawn(argv, workdir / f"engine-{i}.log", env=dict(spec.env)))
        for url, proc in zip(f.urls, f.procs, strict=True):
            wait_ready(url + "/health", proc)
        yield f
    finally:
        stop(f.procs)


def peer_available() -> bool:
    return (
        shutil.which(PEER_BINARY) is not None
        or (Path(sys.executable).parent / PEER_BINARY).exists()
    )


def _peer_binary() -> str:
    local = Path(sys.executable).parent / PEER_BINARY
    return str(local) if local.exists() else (shutil.which(PEER_BINARY) or PEER_BINARY)


def router_argv(
    c: Contender, urls: Sequence[str], port: int, workdir: Path, model: str = MODEL
) -> list[str]:
    """The command line starting contender ``c`` in front of ``urls`` on ``port``."""
    if c.kind == "peer":
        (metrics_port,) = free_ports(1)  # its own Prometheus port, so peers can run side by side
        return [_peer_binary(), "--host", "127.0.0.1", "--port", str(port), "--policy", c.strategy,
                "--worker-urls", *urls, "--worker-startup-check-interval", "1",
                "--prometheus-host", "127.0.0.1", "--prometheus-port", str(metrics_port),
                "--log-level", "warning", *c.options.get("argv", ())]  # fmt: skip
    path = workdir / f"router-{c.slug}-{port}.yaml"
    path.write_text(json.dumps(our_config(c, urls, port, model)), encoding="utf-8")  # JSON is YAML
    code = ("from sagellm_router.cli import router; "
            f"router.main(['--config', {str(path)!r}, '--log-level', 'warning'])")  # fmt: skip
    return [sys.executable, "-c", code]


def our_config(c: Contender, urls: Sequence[str], port: int, model: str = MODEL) -> dict[str, Any]:
    """Our router's config for contender ``c`` (see ``Contender.options``)."""
    opts = c.options
    roles = list(opts.get("roles") or ["General"] * len(urls))
    if len(roles) != len(urls):
        raise BenchError(f"{c.name}: {len(roles)} roles for {len(urls)} engines")
    endpoints = [
        {"url": u, "role": r, **opts.get("endpoint", {})} for u, r in zip(urls, roles, strict=True)
    ]
    pool = {"name": "bench", "model": model, "routing": c.strategy, "endpoints": endpoints,
            **opts.get("pool", {})}  # fmt: skip
    return {"server": {"host": "127.0.0.1", "port": port},
            "discovery": {"type": "static", "pools": [pool]}, **opts.get("config", {})}  # fmt: skip


@contextmanager
def router(
    c: Contender,
    urls: Sequence[str],
    workdir: Path,
    cpus: set[int] | None = None,
    model: str = MODEL,
) -> Iterator[list[str]]:
    """Start contender ``c``; yield the target URL list the load generator should use."""
    if c.kind == "direct":
        yield list(urls)
        return
    (port,) = free_ports(1)
    log = workdir / f"router-{c.slug}.log"
    proc = spawn(router_argv(c, urls, port, workdir, model), log, cpus)
    try:
        wait_ready(f"http://127.0.0.1:{port}/health", proc)
        if c.kind == "ours":
            wait_ready(f"http://127.0.0.1:{port}/ready", proc)
        yield [f"http://127.0.0.1:{port}"]
    finally:
        stop([proc])


@dataclass
class RouterSet:
    """Routers running side by side, paused (SIGSTOP) while another one is measured, so idle
    ones (which keep polling the engines) do not take CPU from the run. A contender with
    ``replicas`` has several processes and as many target URLs."""

    targets: dict[str, list[str]]
    procs: dict[str, list[subprocess.Popen[bytes]]] = field(default_factory=dict)

    def __getitem__(self, name: str) -> list[str]:
        return self.targets[name]

    def cpu_seconds(self, name: str) -> float | None:
        """CPU time used so far by router ``name``'s processes, summed (None: not measurable,
        e.g. ``direct``, which has none)."""
        times = [cpu_seconds(p.pid) for p in self.procs.get(name, [])]
        return None if not times or None in times else sum(t for t in times if t is not None)

    @contextmanager
    def active(self, name: str) -> Iterator[list[str]]:
        """Resume router ``name`` for the block (then pause it again); yield its targets."""
        procs = self.procs.get(name, [])
        for proc in procs:
            proc.send_signal(signal.SIGCONT)
        try:
            # our router's scrape timer has expired during the pause, so it scrapes at once; the
            # load generator's start (~0.8 s) passes before the first request
            for target, proc in zip(self.targets[name], procs, strict=False):
                wait_ready(target + "/health", proc)
            yield self.targets[name]
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGSTOP)


def replicas(c: Contender) -> int:
    n = int(c.options.get("replicas", 1))
    if n < 1:
        raise BenchError(f"{c.name}: replicas must be >= 1, got {n}")
    return n


def replica_set(c: Contender) -> list[Contender]:
    """One contender per replica of ``c``; with ``replica_sync``, each publishing on its own
    port and subscribed to the others'."""
    n = replicas(c)
    if not c.options.get("replica_sync"):
        return [c] * n
    ports = free_ports(n)
    out = []
    for port in ports:
        config = dict(c.options.get("config", {}))
        sync = {"port": port, "host": "127.0.0.1",
                "peers": [f"127.0.0.1:{p}" for p in ports if p != port]}  # fmt: skip
        config["routing"] = {**config.get("routing", {}), "replica_sync": sync}
        out.append(replace(c, options={**c.options, "config": config}))
    return out


@contextmanager
def routers(cs: Sequence[Contender], urls: Sequence[str], workdir: Path) -> Iterator[RouterSet]:
    """Start every contender of ``cs`` (each of its replicas) at once, wait until all are
    ready, pause them all (``direct`` contenders get the engine URLs and no process)."""
    if any(c.kind == "direct" for c in cs):
        with routers([c for c in cs if c.kind != "direct"], urls, workdir) as rest:
            rest.targets.update({c.name: list(urls) for c in cs if c.kind == "direct"})
            yield rest
        return
    started: dict[str, list[tuple[subprocess.Popen[bytes], int]]] = {}
    try:
        for c in cs:
            started[c.name] = []
            for r, one in enumerate(replica_set(c)):
                (port,) = free_ports(1)
                log = workdir / f"router-{c.slug}{f'-{r}' if r else ''}.log"
                started[c.name].append((spawn(router_argv(one, urls, port, workdir), log), port))
        for c in cs:
            for proc, port in started[c.name]:
                wait_ready(f"http://127.0.0.1:{port}/health", proc)
                if c.kind == "ours":
                    wait_ready(f"http://127.0.0.1:{port}/ready", proc)
        for proc, _ in (p for group in started.values() for p in group):
            proc.send_signal(signal.SIGSTOP)
        yield RouterSet({n: [f"http://127.0.0.1:{port}" for _, port in g]
                         for n, g in started.items()},
                        {n: [proc for proc, _ in g] for n, g in started.items()})  # fmt: skip
    finally:
        procs = [proc for group in started.values() for proc, _ in group]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        stop(procs)


def scrape(url: str) -> dict[str, float]:
    """``/metrics`` of ``url`` as {"name{labels}": value} (comments skipped; {} on failure)."""
    try:
        text = http_get(url + "/metrics")[1]
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            try:
                out[key] = float(value)
            except ValueError:
                continue
    return out


def run_loadgen(spec: dict[str, Any], workdir: Path, tag: str, timeout: float) -> dict[str, Any]:
    """Run the load generator in its own process on ``spec``; return its result."""
    spec_path, out_path = workdir / f"{tag}.spec.json", workdir / f"{tag}.out.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    out_path.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "sagellm_router.bench.loadgen", str(spec_path), str(out_path)]
    proc = spawn(argv, workdir / "loadgen.log")
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop([proc])
        raise BenchError(f"load generator {tag} did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0 or not out_path.exists():
        raise BenchError(f"load generator {tag} failed (exit {proc.returncode}); see loadgen.log")
    result: dict[str, Any] = json.loads(out_path.read_text(encoding="utf-8"))
    spec_path.unlink(missing_ok=True)
    return result
