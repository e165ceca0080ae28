#!/usr/bin/env python3
"""The control plane end to end, with no GPU and no vLLM: ``python examples/demo_control_plane.py``.

It starts four simulated vLLM engines (``sagellm sim``: same HTTP API and metrics as vLLM) on
local ports, or uses the engines you name with ``--engine URL`` (vLLM servers included), and
embeds a ``ControlPlaneManager`` in front of them:

1. registers two general instances of different parallelism and a prefill/decode pair;
2. submits requests of every priority with SLOs and waits for them;
3. sends one request with ``SamplingParams`` and a parallelism hint;
4. sends a long prompt, which PD separation runs as prefill on one engine, decode on another;
5. shows the instances' live load during a burst;
6. switches the scheduling policy and the routing strategy at run time;
7. prints the metrics and status the seed documents describe, then stops.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from control_plane import (
    ControlPlaneManager,
    DecodingConfig,
    ExecutionInstance,
    ExecutionInstanceType,
    PDSeparationConfig,
    PrefillingConfig,
    RequestMetadata,
    RequestPriority,
    SamplingParams,
)
from control_plane.types import ParallelismType

MODEL, PD_MODEL = "demo-model", "demo-model-pd"
PD_CONFIG = json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_both"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def simulated_engines() -> Iterator[list[tuple[str, int]]]:
    """Four ``sagellm sim`` engines: two for MODEL, a prefill/decode pair for PD_MODEL."""
    specs = [
        (MODEL, ()),
        (MODEL, ()),
        (PD_MODEL, ("--kv-transfer-config", PD_CONFIG)),
        (PD_MODEL, ("--kv-transfer-config", PD_CONFIG)),
    ]
    procs, addresses = [], []
    try:
        for model, extra in specs:
            port = free_port()
            argv = [
                sys.executable,
                "-m",
                "sagellm_sim",
                "--model",
                model,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--sim-profile",
                "tiny",
                "--sim-time-scale",
                "0.05",
                "--sim-log-level",
                "warning",
                *extra,
            ]
            procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL))
            addresses.append(("127.0.0.1", port))
        for host, port in addresses:
            wait_ready(f"http://{host}:{port}/health")
        yield addresses
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)


def wait_ready(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout_s:g}s")


def instances(addresses: list[tuple[str, int]]) -> list[ExecutionInstance]:
    (h0, p0), (h1, p1), (h2, p2), (h3, p3) = addresses
    general = {"model_name": MODEL, "gpu_memory_gb": 80.0, "max_concurrent_requests": 8,
               "cost_per_gpu_hour": 2.0}  # fmt: skip
    return [
        ExecutionInstance(
            instance_id="vllm-tp4", host=h0, port=p0, tensor_parallel_size=4, gpu_count=4, **general
        ),
        ExecutionInstance(instance_id="vllm-tp1", host=h1, port=p1, gpu_count=1, **general),
        ExecutionInstance(
            instance_id="prefill-1",
            host=h2,
            port=p2,
            model_name=PD_MODEL,
            tensor_parallel_size=4,
            gpu_count=4,
            instance_type=ExecutionInstanceType.PREFILLING,
            prefilling_config=PrefillingConfig(target_batch_size=64),
        ),
        ExecutionInstance(
            instance_id="decode-1",
            host=h3,
            port=p3,
            model_name=PD_MODEL,
            instance_type=ExecutionInstanceType.DECODING,
            decoding_config=DecodingConfig(target_latency_ms=50, max_parallel_requests=16),
        ),
    ]


async def demo(addresses: list[tuple[str, int]]) -> None:
    cp = ControlPlaneManager(
        scheduling_policy="adaptive",
        routing_strategy="load_balanced",
        enable_monitoring=True,
        pd_config=PDSeparationConfig(prefilling_threshold_input_tokens=200),
    )
    for instance in instances(addresses):
        cp.register_instance(instance)
    await cp.start()
    print(
        f"1. registered {len(cp.get_instances())} instances; status: "
        f"{cp.get_status()['available_instances']} available"
    )

    priorities = list(RequestPriority)
    ids = [
        await cp.submit_request(
            RequestMetadata(
                request_id=f"req-{i:03d}",
                user_id=f"user-{i % 3}",
                prompt=f"Question {i}?",
                priority=priorities[i % len(priorities)],
                slo_deadline_ms=30_000,
                max_tokens=16,
                model_name=MODEL,
            )
        )
        for i in range(10)
    ]
    while True:
        statuses = [await cp.get_request_status(rid) for rid in ids]
        if all(s is not None and s.value not in ("queued", "running") for s in statuses):
            break
        await asyncio.sleep(0.05)
    done = [(await cp.get_request_result(rid)) for rid in ids]
    print(f"2. {sum(r.status.value == 'completed' for r in done)}/{len(ids)} requests completed")

    answer = await cp.process_request(
        "Tell me about GPUs.",
        SamplingParams(temperature=0.7, top_p=0.9, max_tokens=24),
        model_name=MODEL,
        parallelism_hint=ParallelismType.TENSOR_PARALLEL,
    )
    print(
        f"3. TP-hinted request served by {answer['instance']}: "
        f"{answer['usage']['completion_tokens']} tokens"
    )

    pd = await cp.process_request("long context " * 200, {"max_tokens": 8}, model_name=PD_MODEL)
    print(f"4. long prompt: prefill on {pd['prefill_instance']}, decode on {pd['instance']}")

    burst = [
        asyncio.ensure_future(cp.process_request("burst", {"max_tokens": 64}, model_name=MODEL))
        for _ in range(12)
    ]
    await asyncio.sleep(0.3)
    loads = ", ".join(f"{i.instance_id}={i.current_load:.0%}" for i in cp.get_instances())
    print(f"5. load during a burst: {loads}")
    await asyncio.gather(*burst)

    cp.update_policy("priority")
    cp.router.routing_strategy = "round_robin"
    general = [i for i in cp.get_instances() if i.model_name == MODEL]
    pick = cp.load_balancer.select_instance(general, algorithm="load_balanced")
    print(
        f"6. policy {cp.get_status()['scheduling_policy']}, routing "
        f"{cp.router.routing_strategy}; least loaded now: {pick.instance_id if pick else None}"
    )

    m = cp.get_metrics()
    print(
        f"7. completed {m.completed_requests}/{m.total_requests}, failed {m.failed_requests}, "
        f"avg latency {m.avg_latency_ms:.1f} ms, p95 {m.p95_latency_ms:.1f} ms, "
        f"{m.requests_per_second:.2f} req/s, SLO compliance {m.slo_compliance_rate:.2%}, "
        f"GPU utilization {m.avg_gpu_utilization:.2%}, cost/token ${m.cost_per_token:.2e}"
    )
    vllm_tp4 = cp.get_instance_metrics("vllm-tp4")
    print(
        f"   vllm-tp4: processed {vllm_tp4['total_requests_processed']}, "
        f"healthy {vllm_tp4['is_healthy']}"
    )
    await cp.stop()
    print("stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--engine",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help=f"use these 4 engines (2 serving {MODEL}, then a prefill and a "
        f"decode engine serving {PD_MODEL}) instead of starting simulators",
    )
    args = parser.parse_args()
    if args.engine:
        if len(args.engine) != 4:
            parser.error("give --engine four times (or not at all)")
        given = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in args.engine]
        asyncio.run(demo(given))
        return
    with simulated_engines() as addresses:
        asyncio.run(demo(addresses))


if __name__ == "__main__":
    main()
