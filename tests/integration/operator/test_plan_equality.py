"""One planner: the plan the running operator writes to ``status.plan`` equals what
``sagellm plan -f POOL.yaml`` prints for the same manifest, across a table of specs.

The table covers the cases where two planners once disagreed: a partly given model shape
(the given heads must win over the size table), explicit KV heads on a 70B model, explicit
parallelism, a multi-node plan, MoE expert parallelism and a disaggregated pool.
"""

from __future__ import annotations

import asyncio
import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_harness import cluster, operator_running, sample

from e2e.waiting import eventually

Obj = dict[str, Any]


def _with(base: str, name: str, **model: Any) -> Obj:
    pool = sample(base, name)
    pool["spec"]["model"].update(model)
    return pool


def _explicit_tp(name: str) -> Obj:
    pool = sample("general-pool", name)
    pool["spec"]["parallelism"] = {"strategy": "TP", "tensor": 2}
    return pool


TABLE: dict[str, Obj] = {
    "partial-shape": _with("general-pool", "partial-shape", parameters=8, attentionHeads=24),
    "kv-heads-70b": _with("general-pool", "kv-heads-70b", parameters=70, kvHeads=64),
    "explicit-tp": _explicit_tp("explicit-tp"),
    "multinode": sample("multinode-70b-pool", "multinode"),
    "moe": sample("moe-pool", "moe"),
    "pd": sample("pd-pool", "pd"),
}


async def _cli_plan(pool: Obj, tmp: Path) -> Obj:
    path = tmp / f"{pool['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(pool))
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("sagellm")), "plan", "-f", str(path), "-o", "json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert out, err.decode()
    result: Obj = json.loads(out)
    return result


@pytest.mark.slow
async def test_status_plan_equals_sagellm_plan(tmp_path: Path) -> None:
    async with cluster(lws=True) as c, operator_running(c.emu):
        for pool in TABLE.values():
            await c.create_pool(copy.deepcopy(pool))
        for name, pool in TABLE.items():

            async def planned(name: str = name) -> list[Obj] | None:
                plan: list[Obj] | None = (await c.pool(name)).get("status", {}).get("plan")
                return plan

            written = await eventually(planned)
            expected = await _cli_plan(pool, tmp_path)
            assert expected["errors"] == [], (name, expected["errors"])
            assert written == expected["plan"], name


async def test_given_heads_win_over_the_size_table(tmp_path: Path) -> None:
    """An 8B model with 24 heads: TP 16 does not divide 24, so the plan must refuse it (the
    size table's 32 heads would have let it pass and vLLM fail at start)."""
    pool = _with("general-pool", "heads", parameters=8, attentionHeads=24)
    pool["spec"]["parallelism"] = {"strategy": "TP", "tensor": 16}
    pool["spec"]["engine"]["gpusPerNode"] = 16
    result = await _cli_plan(pool, tmp_path)
    assert any("24" in e and "head" in e for e in result["errors"]), result["errors"]
