"""Smoke test of the autoscaling benchmark: ``bench/autoscale.py`` writes a report with every
field the docs name (not its timings), and ``sagellm bench autoscale`` reads it or says why not.

The script run is the real thing at a tiny scale (phases at 0.15x: ~27 s of load per fleet,
two local stacks: emulated API, operator, fake kubelet with simulator pods, router).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sagellm_router.bench.cli import bench
from sagellm_router.bench.scenarios import availability
from sagellm_router.bench.scenarios.autoscale import runs_of

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PHASES = {"ramp_up", "hold", "ramp_down", "idle", "burst"}
STATS = {"requests", "failures", "held", "ttft_p50_ms", "ttft_p90_ms", "ttft_p90_outside_zero_ms",
         "slo_attainment", "replica_seconds", "mean_replicas"}  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_autoscale_script_reports_every_field(tmp_path: Path) -> None:
    argv = [sys.executable, str(ROOT / "bench" / "autoscale.py"), "--scale", "0.15",
            "--drain-poll", "0.5", "--out", str(tmp_path)]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=580, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((tmp_path / "autoscale.json").read_text())
    assert {"date", "machine", "argv", "settings", "phases", "runs", "verdict"} <= set(doc)
    assert {"loadavg_at_start", "loadavg_at_end", "cpus"} <= set(doc["machine"])
    assert doc["settings"]["slo_ms"] == 1000
    assert doc["settings"]["operator_args"][-2:] == ["--drain-poll", "0.5"]
    assert [p["name"] for p in doc["phases"]] == ["ramp_up", "hold", "ramp_down", "idle", "burst"]
    assert set(doc["runs"]) == {"fixed", "autoscale"}
    for run in doc["runs"].values():
        assert set(run["phases"]) == PHASES
        for stats in [*run["phases"].values(), run["total"]]:
            assert set(stats) >= STATS
        assert {"scale_outs", "held_requests", "held_wait_ms", "errors", "samples"} <= set(run)
        assert run["total"]["requests"] > 0
        assert run["total"]["failures"] == 0, run["errors"]  # every request answered
    assert doc["runs"]["autoscale"]["scale_outs"], "the autoscaled pool starts at 0"
    assert {"t", "from", "to", "seconds_to_ready"} <= set(doc["runs"]["autoscale"]["scale_outs"][0])
    assert {"replica_seconds_ratio", "gpu_target_met", "ttft_p90_ratio_outside_zero",
            "ttft_target_met"} <= set(doc["verdict"])  # fmt: skip
    assert (tmp_path / "autoscale.png").read_bytes()[:8] == PNG_MAGIC
    rows = runs_of(doc)
    assert {(r["contender"], r["phase"]) for r in rows} == {
        (c, p) for c in ("fixed", "autoscale") for p in (*PHASES, "total")
    }


def test_bench_autoscale_without_script_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(availability, "REPO", tmp_path)  # an installed package: no bench/
    result = CliRunner().invoke(bench, ["autoscale", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "out" / "autoscale.json").read_text())
    assert doc["available"] is False
    assert doc["runs"] == []
    assert "not available" in result.output
    assert "Kubernetes emulator" in result.output


def test_bench_autoscale_rejects_options_that_do_not_apply(tmp_path: Path) -> None:
    result = CliRunner().invoke(bench, ["autoscale", "--duration", "5", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "--duration, --engines and --repeats do not apply" in result.output
