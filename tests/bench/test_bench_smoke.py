"""Smoke test of ``sagellm bench routing --quick``: the files come out and are well-formed.

Real processes (simulators, routers, load generator) on a 2-engine fleet for ~2 s per run; the
numbers themselves are not checked (timing belongs to the benchmark, not to tests).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sagellm_router.bench.cli import bench
from sagellm_router.bench.scenarios import availability

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.timeout(180)
def test_routing_quick_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["routing", "--quick", "--duration", "2", "--engines", "2", "--replicas", "2",
            "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(bench, args)
    assert result.exit_code == 0, result.output + repr(result.exception)

    doc = json.loads((out / "routing.json").read_text())
    assert {"scenario", "settings", "machine", "runs", "summary", "notes"} <= set(doc)
    assert doc["scenario"] == "routing"
    assert doc["settings"]["fleet"]["engines"] == 2
    contenders = {r["contender"] for r in doc["runs"]}
    assert {"ours/round_robin", "ours/prefix_aware", "ours/kv_aware", "ours/oracle",
            "ours/prefix_aware-x2", "ours/kv_aware-x2"} <= contenders  # fmt: skip
    assert doc["settings"]["replicas"] == 2
    assert (out / "logs" / "router-ours-prefix_aware-x2-1.log").exists()  # the second replica
    for run in doc["runs"]:
        assert run["requests"] > 0
        assert {"ttft_p90_ms", "output_tok_s", "prefix_hit_rate", "itl_p99_ms"} <= set(run)

    with (out / "routing_summary.csv").open() as fh:
        header = next(csv.reader(fh))
    assert {"workload", "load", "contender", "ttft_p90_ms", "output_tok_s"} <= set(header)
    with (out / "routing_runs.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(doc["runs"])

    for name in ("", "_80", "_80_replicas"):
        png = out / f"routing_shared_prefix{name}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC
    assert "ours/prefix_aware" in result.output


def test_operator_without_script_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(availability, "REPO", tmp_path)  # a checkout without bench/
    result = CliRunner().invoke(bench, ["operator", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "out" / "operator.json").read_text())
    assert doc["runs"] == []
    assert doc["available"] is False
    assert "not available" in result.output
