"""Autoscaling benchmark: one load curve against a fixed fleet sized for its peak and against the
autoscaler (``min 0``, ``max`` = that peak); GPU cost (replica-seconds) and TTFT per phase.

Each run gets its own local stack (``tests/e2e_local/local_cluster.py``: emulated Kubernetes
API, the real operator with ``--autoscale-interval 0.5`` reading the real router's demand, a
fake kubelet running one simulator process per pod with ``--sim-startup-delay 5``, the real
router; the simulators model an 8B model on an H100 at a quarter of its speed, so a prompt's
prefill takes time and shares the engine with the streams it joins). The load is closed-loop
"users": user i sends a streaming chat request (a ~1,000-token prompt that no cache holds,
``max_tokens`` 120, a few seconds long), waits 0-0.5 s, and sends the next one while the
phase's user count is above i. Phases (seconds, times ``--scale``): ramp up 1->6 users, hold
6, ramp down 6->1, idle 0, then a burst of 4 from zero. Peak replicas = 6 users / 2 per replica = 3.

Reported per run and phase: requests, failures, TTFT p50/p90 (all, and outside the
scale-from-zero windows), SLO attainment (TTFT <= ``--slo-ms``, answered 200), replica-seconds
(every ExecutionInstance of the pool, starting, ready or draining, integrated over time from the
emulated API) beside the ideal (``ceil(users / 2)`` replicas at every instant: no start-up, no
drain, no window); per run: scale-outs (spec replicas raised -> that many Ready) and the
requests held while the pool had no Ready replica (their wait = their TTFT).

Usage (from a checkout): .venv/bin/python bench/autoscale.py [--quick] [--scale 1.0]
        [--slo-ms 1000] [--down-window 3] [--idle 8] [--out bench-results/autoscale]
Writes ``autoscale.json`` and ``autoscale.png`` to ``--out``. A benchmark: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from e2e import scenarios, traffic  # noqa: E402
from e2e.waiting import eventually  # noqa: E402
from tests.e2e_local.local_cluster import FleetSampler, LocalCluster, local_cluster  # noqa: E402

NAME = "bench"
PEAK = 3
PER_REPLICA = 2
MAX_TOKENS = 120
PROMPT_WORDS = 1000  # one simulator token each
SIM_ARGS = ["--sim-startup-delay", "5", "--sim-slow-factor", "4",
            "--sim-profile", "llama-3.1-8b-h100"]  # fmt: skip
OPERATOR = ("--autoscale-interval", "0.5", "--router-url", "{router}")
AUTOSCALING = {"enabled": True, "general": {"minReplicas": 0, "maxReplicas": PEAK},
               "targetQueueDepthPerReplica": PER_REPLICA, "scaleDownWindowSeconds": 3,
               "scaleToZeroAfterSeconds": 8}  # fmt: skip
PHASES = (("ramp_up", 40, 1, 6), ("hold", 40, 6, 6), ("ramp_down", 30, 6, 1), ("idle", 40, 0, 0),
          ("burst", 30, 4, 4))  # fmt: skip


@dataclass(frozen=True)
class Phase:
    name: str
    start: float
    end: float
    users_from: int
    users_to: int

    def users(self, t: float) -> int:
        frac = (t - self.start) / (self.end - self.start)
        return round(self.users_from + (self.users_to - self.users_from) * frac)


def schedule(scale: float) -> list[Phase]:
    out, t = [], 0.0
    for name, seconds, a, b in PHASES:
        out.append(Phase(name, t, t + seconds * scale, a, b))
        t += seconds * scale
    return out


@dataclass
class Request:
    phase: str
    start: float
    ttft: float | None = None
    end: float = 0.0
    status: int = 0
    error: str = ""
    held: bool = False

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.error and self.ttft is not None


def ideal_seconds(phase: Phase, step: float = 0.05) -> float:
    """Replica-seconds of a fleet that is always exactly ``ceil(users / 2)``."""
    n = max(1, round((phase.end - phase.start) / step))
    width = (phase.end - phase.start) / n
    return sum(-(-phase.users(phase.start + (i + 0.5) * width) // PER_REPLICA) * width
               for i in range(n))  # fmt: skip


def prompt(start: float) -> str:
    """~PROMPT_WORDS tokens led by a unique tag, so no engine has any of it cached."""
    words = ("alpha", "beta", "gamma", "delta", "kappa", "sigma", "omega")
    return f"request {start:.6f}: " + " ".join(words[i % 7] for i in range(PROMPT_WORDS))


def manifest(autoscale: bool, autoscaling: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": {"name": NAME, "source": "sim/tiny", "parameters": 1, "maxModelLen": 4096},
        "engine": {"kind": "Simulator", "gpuMemoryGiB": 24, "extraArgs": SIM_ARGS},
        "roles": {"general": {"replicas": 0 if autoscale else PEAK}},
        "scheduling": {"routing": "load_balanced", "queueTimeoutMs": 60000},
    }
    if autoscale:
        spec["autoscaling"] = autoscaling
    return {"apiVersion": "sagellm.io/v1alpha1", "kind": "InferencePool",
            "metadata": {"name": NAME}, "spec": spec}  # fmt: skip


async def stream(session: aiohttp.ClientSession, url: str, out: Request, t0: float) -> None:
    """One streaming chat request; TTFT at the first ``data:`` event, errors recorded."""
    body = {"model": NAME, "max_tokens": MAX_TOKENS, "stream": True, "ignore_eos": True,
            "messages": [{"role": "user", "content": prompt(out.start)}]}  # fmt: skip
    try:
        async with session.post(f"{url}/v1/chat/completions", json=body) as resp:
            out.status = resp.status
            async for data in traffic.sse_data(resp):
                if out.ttft is None:
                    out.ttft = time.monotonic() - t0 - out.start
                if data == "[DONE]":
                    break
                if '"error"' in data and not out.error:
                    out.error = data[:200]
            if resp.status != 200:
                out.error = out.error or f"HTTP {resp.status}"
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        out.status = out.status or 598
        out.error = f"{type(exc).__name__}: {exc}"
    out.end = time.monotonic() - t0


def phase_at(phases: list[Phase], t: float) -> Phase | None:
    return next((p for p in phases if p.start <= t < p.end), None)


async def user(index: int, url: str, phases: list[Phase], t0: float, out: list[Request]) -> None:
    rng = random.Random(index)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=90)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while (t := time.monotonic() - t0) < phases[-1].end:
            phase = phase_at(phases, t)
            if phase is None or index >= phase.users(t):
                await asyncio.sleep(0.1)
                continue
            req = Request(phase.name, t)
            out.append(req)
            await stream(session, url, req, t0)
            await asyncio.sleep(rng.uniform(0, 0.5))


async def wait_start(cluster: LocalCluster, autoscale: bool) -> None:
    if not autoscale:
        await scenarios.wait_pool_ready(cluster, NAME, PEAK, 180)
        return

    async def router_knows_pool() -> bool:
        async with aiohttp.ClientSession() as s, s.get(f"{cluster.router_url}/metrics") as r:
            return f'sagellm_router_demand_queued_requests{{pool="default/{NAME}"}}' in (
                await r.text()
            )

    await eventually(router_knows_pool, "the router to see the pool", 60, 0.2)


async def run_once(
    autoscale: bool, phases: list[Phase], workdir: Path, autoscaling: dict[str, Any],
    operator_args: tuple[str, ...] = OPERATOR,
) -> dict[str, Any]:  # fmt: skip
    """One run on a fresh stack: the requests and the fleet samples."""
    async with local_cluster(workdir, operator_args=operator_args) as cluster:
        await cluster.apply(manifest(autoscale, autoscaling))
        await wait_start(cluster, autoscale)
        sampler, stop = FleetSampler(cluster, NAME), asyncio.Event()
        t0 = time.monotonic()
        watcher = asyncio.create_task(sampler.run(stop, t0))
        requests: list[Request] = []
        peak_users = max(max(p.users_from, p.users_to) for p in phases)
        await asyncio.gather(*(user(i, cluster.router_url, phases, t0, requests)
                               for i in range(peak_users)))  # fmt: skip
        stop.set()
        await watcher
    for req in requests:
        req.held = autoscale and ready_at(sampler, req.start) == 0
    return {"requests": requests, "sampler": sampler}


def ready_at(sampler: FleetSampler, t: float) -> int:
    before = [s for s in sampler.samples if s.t <= t]
    return before[-1].ready if before else 0


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


def phase_stats(reqs: list[Request], sampler: FleetSampler, lo: float, hi: float,
                slo_s: float) -> dict[str, Any]:  # fmt: skip
    ttfts = [r.ttft for r in reqs if r.ok and r.ttft is not None]
    outside = [r.ttft for r in reqs if r.ok and not r.held and r.ttft is not None]
    met = sum(1 for r in reqs if r.ok and r.ttft is not None and r.ttft <= slo_s)
    seconds = sampler.instance_seconds(lo, hi)
    return {"requests": len(reqs), "failures": sum(1 for r in reqs if not r.ok),
            "held": sum(1 for r in reqs if r.held),
            "ttft_p50_ms": pct(ttfts, 0.5), "ttft_p90_ms": pct(ttfts, 0.9),
            "ttft_p90_outside_zero_ms": pct(outside, 0.9),
            "slo_attainment": round(met / len(reqs), 3) if reqs else None,
            "replica_seconds": round(seconds, 1),
            "mean_replicas": round(seconds / (hi - lo), 2) if hi > lo else None}  # fmt: skip


def scale_outs(sampler: FleetSampler) -> list[dict[str, Any]]:
    """Each rise of spec replicas (n -> m at t): seconds until m instances are Ready."""
    out: list[dict[str, Any]] = []
    samples = sampler.samples
    for prev, cur in itertools.pairwise(samples):
        if cur.replicas <= prev.replicas:
            continue
        done = next((s for s in samples if s.t >= cur.t and s.ready >= cur.replicas), None)
        out.append({"t": round(cur.t, 1), "from": prev.replicas, "to": cur.replicas,
                    "seconds_to_ready": round(done.t - cur.t, 1) if done else None})  # fmt: skip
    return out


def summarize(run: dict[str, Any], phases: list[Phase], slo_s: float) -> dict[str, Any]:
    reqs: list[Request] = run["requests"]
    sampler: FleetSampler = run["sampler"]
    end = max([phases[-1].end, *(r.end for r in reqs)])
    bounds = [(p.name, p.start, p.end) for p in phases]
    bounds[-1] = (phases[-1].name, phases[-1].start, end)  # the last phase runs until all end
    per_phase = {name: phase_stats([r for r in reqs if r.phase == name], sampler, lo, hi, slo_s)
                 for name, lo, hi in bounds}  # fmt: skip
    held = [r for r in reqs if r.held]
    return {
        "total": phase_stats(reqs, sampler, 0.0, end, slo_s),
        "phases": per_phase,
        "scale_outs": scale_outs(sampler),
        "held_requests": len(held),
        "held_wait_ms": sorted(round((r.ttft or 0) * 1000) for r in held),
        "errors": [r.error for r in reqs if not r.ok][:10],
        "samples": [asdict(s) for s in sampler.samples],
        "seconds": round(end, 1),
    }


def verdict(fixed: dict[str, Any], auto: dict[str, Any]) -> dict[str, Any]:
    """The issue's target: <= 60 % of the fixed fleet's replica-seconds and TTFT p90 within
    1.5x of it outside the scale-from-zero windows, per phase with requests in both runs."""
    ratio = auto["total"]["replica_seconds"] / fixed["total"]["replica_seconds"]
    ttft: dict[str, float | None] = {}
    for name, a in auto["phases"].items():
        f = fixed["phases"][name]
        if a["ttft_p90_outside_zero_ms"] and f["ttft_p90_ms"]:
            ttft[name] = round(a["ttft_p90_outside_zero_ms"] / f["ttft_p90_ms"], 2)
    return {"replica_seconds_ratio": round(ratio, 3), "gpu_target_met": ratio <= 0.6,
            "ttft_p90_ratio_outside_zero": ttft,
            "ttft_target_met": all(v <= 1.5 for v in ttft.values() if v is not None)}  # fmt: skip


def _plot_fleet(top: Any, bottom: Any, label: str, color: str, run: dict[str, Any]) -> None:
    """One fleet: its instances (and Ready ones when autoscaled) over time; each TTFT."""
    ts = [s["t"] for s in run["samples"]]
    cost = f"{label}: instances ({run['total']['replica_seconds']:.0f} replica-s)"
    top.step(ts, [s["instances"] for s in run["samples"]], where="post", color=color, label=cost)
    if label == "autoscale":
        ready = [s["ready"] for s in run["samples"]]
        top.step(ts, ready, where="post", color=color, linestyle=":", label=f"{label}: ready")
    answered = [r for r in run["requests"] if r["ttft"] is not None]
    xs, ys = [r["start"] for r in answered], [r["ttft"] for r in answered]
    bottom.scatter(xs, ys, s=8, color=color, label=f"{label}: TTFT")


def plot(result: dict[str, Any], path: Path) -> None:
    """Instances over time for both fleets, the phases, and the TTFT of every request."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 6.5), sharex=True)
    for label, color in (("fixed", "tab:gray"), ("autoscale", "tab:blue")):
        _plot_fleet(top, bottom, label, color, result["runs"][label])
    for phase in result["phases"]:
        for ax in (top, bottom):
            ax.axvline(phase["start"], color="lightgray", linewidth=0.8)
        top.text(phase["start"] + 1, PEAK + 0.6, phase["name"], fontsize=8)
    slo_s = result["settings"]["slo_ms"] / 1000
    bottom.axhline(slo_s, color="tab:red", linestyle="--", label="TTFT objective")
    bottom.set_yscale("log")
    top.set_ylabel("replicas")
    top.set_ylim(0, PEAK + 1)
    bottom.set_ylabel("TTFT (s, log)")
    bottom.set_xlabel("seconds since the load started")
    for ax in (top, bottom):
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
            "python": sys.version.split()[0]}  # fmt: skip


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    phases = schedule(args.scale)
    slo_s = args.slo_ms / 1000
    autoscaling = {**AUTOSCALING, "scaleDownWindowSeconds": args.down_window,
                   "scaleToZeroAfterSeconds": args.idle}  # fmt: skip
    operator_args = (*OPERATOR, "--drain-poll", str(args.drain_poll))
    result: dict[str, Any] = {
        "scenario": "autoscale", "date": datetime.datetime.now(datetime.UTC).isoformat(
            timespec="seconds"), "machine": machine(), "argv": sys.argv[1:],
        "settings": {"slo_ms": args.slo_ms, "scale": args.scale, "peak_replicas": PEAK,
                     "per_replica": PER_REPLICA, "max_tokens": MAX_TOKENS, "sim_args": SIM_ARGS,
                     "autoscaling": autoscaling, "operator_args": list(operator_args),
                     "prompt_words": PROMPT_WORDS},
        "phases": [asdict(p) for p in phases], "runs": {},
        "ideal_replica_seconds": {p.name: round(ideal_seconds(p), 1) for p in phases},
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-autoscale-") as tmp:
        for label, autoscale in (("fixed", False), ("autoscale", True)):
            print(f"run {label}: {phases[-1].end:.0f} s of load ...", flush=True)
            workdir = Path(tempfile.mkdtemp(prefix=label, dir=tmp))
            run = await run_once(autoscale, phases, workdir, autoscaling, operator_args)
            summary = summarize(run, phases, slo_s)
            summary["requests"] = [asdict(r) for r in run["requests"]]
            result["runs"][label] = summary
    result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["verdict"] = verdict(result["runs"]["fixed"], result["runs"]["autoscale"])
    ideal = sum(result["ideal_replica_seconds"].values())
    result["verdict"]["ideal_ratio"] = round(
        ideal / result["runs"]["fixed"]["total"]["replica_seconds"], 3
    )
    return result


def table(result: dict[str, Any]) -> str:
    cols = (
        "requests",
        "failures",
        "held",
        "ttft_p50_ms",
        "ttft_p90_ms",
        "ttft_p90_outside_zero_ms",
        "slo_attainment",
        "replica_seconds",
        "mean_replicas",
    )
    lines = ["| run | phase | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|"]
    for label, run in result["runs"].items():
        for name, stats in [*run["phases"].items(), ("total", run["total"])]:
            cells = ["-" if stats[c] is None else str(stats[c]) for c in cols]
            lines.append(f"| {label} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="phases at 0.4x (--scale 0.4)")
    parser.add_argument("--scale", type=float, default=None, help="phase length multiplier")
    parser.add_argument("--slo-ms", type=float, default=1000.0, help="TTFT objective (ms)")
    parser.add_argument(
        "--down-window",
        type=int,
        default=3,
        help="spec.autoscaling.scaleDownWindowSeconds of the autoscaled pool",
    )
    parser.add_argument(
        "--idle",
        type=int,
        default=8,
        help="spec.autoscaling.scaleToZeroAfterSeconds of the autoscaled pool",
    )
    parser.add_argument(
        "--drain-poll",
        type=float,
        default=1.0,
        help="the operator's --drain-poll: seconds between two reads of a draining engine",
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results/autoscale"))
    args = parser.parse_args()
    args.scale = args.scale or (0.4 if args.quick else 1.0)
    if min(args.scale, args.slo_ms, args.drain_poll) <= 0 or min(args.down_window, args.idle) < 0:
        parser.error("--scale, --slo-ms, --drain-poll must be > 0; --down-window, --idle >= 0")
    result = asyncio.run(main_async(args))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "autoscale.json").write_text(json.dumps(result, indent=1))
    plot(result, args.out / "autoscale.png")
    print(table(result))
    for label, run in result["runs"].items():
        print(
            f"{label}: scale-outs {run['scale_outs']}; held {run['held_requests']} "
            f"(wait ms {run['held_wait_ms']}); errors {run['errors']}"
        )
    print(f"verdict: {result['verdict']}")
    print(f"wrote {args.out / 'autoscale.json'}, {args.out / 'autoscale.png'}")


if __name__ == "__main__":
    main()
