"""The operator starts only against the CRDs it was built for (their schema-hash annotation).

The API server enforces the CRD's schema and CEL rules; the operator does not re-check them on
every pool, so it must know at startup that the installed CRDs are this release's.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from sagellm_core.crdversion import SCHEMA_HASH_ANNOTATION
from tests.kubeemu import running_emulator

ROOT = Path(__file__).resolve().parents[3]
SAGELLM = str(Path(sys.executable).with_name("sagellm"))
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


async def _install(api: aiohttp.ClientSession, stale: bool) -> None:
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd: dict[str, Any] = yaml.safe_load(path.read_text())
        if stale and "inferencepools" in path.name:
            crd["metadata"]["annotations"][SCHEMA_HASH_ANNOTATION] = "0123456789abcdef"
        async with api.post(CRDS, json=crd) as resp:
            assert resp.status == 201, await resp.text()


async def _operator_exit(url: str, within_s: float) -> tuple[int | None, str]:
    """Run the operator; its exit code (None: still running after ``within_s``) and stderr."""
    argv = [SAGELLM, "operator", "--api-server", url, "--metrics-port", "0",
            "--liveness-port", "0", "--namespace", "default"]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(*argv, stderr=asyncio.subprocess.PIPE)
    try:
        await asyncio.wait_for(proc.wait(), within_s)
    except TimeoutError:
        proc.terminate()
        await proc.wait()
        return None, ""
    assert proc.stderr is not None
    return proc.returncode, (await proc.stderr.read()).decode()


@pytest.mark.parametrize("stale", [True, False], ids=["stale-crd", "this-release"])
async def test_the_operator_refuses_a_crd_of_another_release(stale: bool) -> None:
    async with running_emulator() as emu, aiohttp.ClientSession(base_url=str(emu.url)) as api:
        await _install(api, stale)
        code, err = await _operator_exit(str(emu.url), within_s=60 if stale else 8)
    if stale:
        assert code not in (None, 0)
        assert "inferencepools.sagellm.io has schema 0123456789abcdef" in err, err[-2000:]
    else:
        assert code is None, err[-2000:]  # still serving
