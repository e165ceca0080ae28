"""The fake kubelet ends deleted pods as a kubelet does: preStop exec hook (with the pod's env
and POD_IP), then SIGTERM, then SIGKILL when the grace period is over; then the final delete."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import aiohttp

from e2e.waiting import eventually
from tests.kubeemu import FakeKubelet, Termination, running_emulator

Obj = dict[str, Any]
PODS = "/api/v1/namespaces/default/pods"
WRITE_IP = "import os, sys; open(sys.argv[1], 'w').write(os.environ['POD_IP'])"


def pod(name: str, hook: list[str], grace: int) -> Obj:
    ip_env = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    container = {"name": "engine", "image": "x", "args": ["tiny", "--sim-profile", "tiny"],
                 "env": [ip_env], "lifecycle": {"preStop": {"exec": {"command": hook}}},
                 }  # fmt: skip
    return {"metadata": {"name": name}, "spec": {"containers": [container],
            "terminationGracePeriodSeconds": grace}}  # fmt: skip


async def run_and_delete(manifest: Obj) -> tuple[Obj, Termination, list[Obj]]:
    """Create the pod, wait until it serves, delete it; the pod as it was, its record, and
    the pods seen while it terminated."""
    async with (
        running_emulator() as emu,
        aiohttp.ClientSession(base_url=str(emu.url)) as http,
        FakeKubelet(str(emu.url), namespace="default", simulate=True) as kubelet,
    ):
        await http.post(PODS, json=manifest)
        name = manifest["metadata"]["name"]

        async def ready() -> Obj | None:
            body: Obj = await (await http.get(f"{PODS}/{name}")).json()
            conds = (body.get("status") or {}).get("conditions") or []
            return (
                body if any(c["type"] == "Ready" and c["status"] == "True" for c in conds) else None
            )

        served = await eventually(ready)
        await http.delete(f"{PODS}/{name}")
        seen: list[Obj] = []

        async def gone() -> bool:
            resp = await http.get(f"{PODS}/{name}")
            if resp.status == 200:
                seen.append(await resp.json())
            return resp.status == 404

        await eventually(gone)
        return served, kubelet.terminations[-1], seen


async def test_prestop_runs_with_the_pod_ip_before_sigterm(tmp_path: Path) -> None:
    out = tmp_path / "hook-ran"
    served, record, seen = await run_and_delete(
        pod("hooked", [sys.executable, "-c", WRITE_IP, str(out)], 30)
    )
    assert out.read_text() == served["status"]["podIP"]
    assert seen, "the pod should stay (terminating) while the kubelet ends it"
    assert seen[0]["metadata"]["deletionGracePeriodSeconds"] == 30
    assert record.busy_at_delete == 0
    assert record.busy_at_sigterm == 0
    assert not record.killed


async def test_a_hook_is_cut_at_the_end_of_the_grace_period(tmp_path: Path) -> None:
    out = tmp_path / "never"
    slow = f"import time; time.sleep(60); open({str(out)!r}, 'w')"
    _, record, _ = await run_and_delete(pod("slow", [sys.executable, "-c", slow], 1))
    assert not out.exists()  # the hook was stopped, then SIGTERM ended the engine
    assert record.grace_s == 1
    assert not record.killed


async def test_sigkill_when_the_process_ignores_sigterm() -> None:
    ignore = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
              "print('ready', flush=True); time.sleep(60)")  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", ignore, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    assert await proc.stdout.readline() == b"ready\n"  # the handler is in place
    kubelet = FakeKubelet("http://127.0.0.1:9")
    record = Termination("stubborn", grace_s=0.5)
    manifest = {"spec": {"containers": [{"name": "engine"}]}}
    await kubelet._end_process(manifest, proc, "127.0.0.1", record)
    assert record.killed
    assert proc.returncode == -9
