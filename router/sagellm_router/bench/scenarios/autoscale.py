"""``autoscale``: runs ``bench/autoscale.py`` of the source checkout when it exists.

The benchmark needs the local Kubernetes stack of the test suite (``tests/kubeemu``, the fake
kubelet, ``tests/e2e_local/local_cluster.py``), which is not part of the installed package.
Without the script (an installed package) the scenario finishes at once with a "not available"
note (exit status 0, no runs). With it, the script runs from the repository root with
``--out <out>/autoscale-raw`` (``--quick``: phases at 0.4x); its ``autoscale.json`` becomes one
run per (fleet, phase) and its plot is copied to ``<out>/autoscale.png``.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from sagellm_router.bench.fleet import BenchError
from sagellm_router.bench.options import BenchOptions, Outcome, Progress, Scenario
from sagellm_router.bench.scenarios import availability

COLUMNS = ("contender", "phase", "requests", "failures", "held", "ttft_p50_ms", "ttft_p90_ms",
           "slo_attainment", "replica_seconds")  # fmt: skip


def runs_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per fleet (``fixed``, ``autoscale``) and phase, plus its ``total``."""
    rows: list[dict[str, Any]] = []
    for label, run in doc["runs"].items():
        for phase, stats in [*run["phases"].items(), ("total", run["total"])]:
            cells = {k: math.nan if v is None else v for k, v in stats.items()}  # "-" in tables
            rows.append({"contender": label, "kind": "autoscale", "phase": phase, **cells})
    return rows


class AutoscaleScenario(Scenario):
    name = "autoscale"

    def steps(self, opts: BenchOptions) -> int:
        return 1

    def execute(self, opts: BenchOptions, out: Path, workdir: Path, progress: Progress) -> Outcome:
        if opts.duration is not None or opts.engines is not None or opts.repeats != 1:
            raise BenchError("autoscale: --duration, --engines and --repeats do not apply "
                             "(the load curve is fixed; --quick shortens it)")  # fmt: skip
        script = availability.REPO / "bench" / "autoscale.py"
        if not script.exists():
            progress(1)
            why = f"{script} is not in this checkout (it needs the tests' Kubernetes emulator)"
            return availability.unavailable(self.name, why)
        raw = out / "autoscale-raw"
        argv = [sys.executable, str(script), "--out", str(raw), *(["--quick"] * opts.quick)]
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=availability.REPO,
                              timeout=3600, check=False)  # fmt: skip
        progress(1)
        (workdir / "autoscale.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
        if proc.returncode != 0:
            raise BenchError(f"bench/autoscale.py exited with {proc.returncode}: "
                             f"{proc.stderr[-1500:]}")  # fmt: skip
        doc = json.loads((raw / "autoscale.json").read_text(encoding="utf-8"))
        plot = out / "autoscale.png"
        shutil.copyfile(raw / "autoscale.png", plot)
        rows = runs_of(doc)
        verdict = doc["verdict"]
        result = {"scenario": self.name, "available": True, "settings": doc["settings"],
                  "argv": argv[1:], "verdict": verdict, "runs": rows,
                  "notes": [f"verdict: {json.dumps(verdict)}"]}  # fmt: skip
        return Outcome(result, rows, COLUMNS, [plot])
