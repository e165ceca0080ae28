"""``operator``: runs ``bench/operator_scale.py`` of the source checkout when it exists.

Without the script (an installed package, or a checkout before it landed) the scenario finishes
at once with a "not available" note (exit status 0, no runs). With it, the script runs as
``python -m bench.operator_scale`` from the repository root (it imports the test Kubernetes
emulator); each line it prints ("N pool(s) x M instances: all instances+pods created in S s;
operator RSS A MiB idle, B MiB after") becomes a run. ``--quick``: one pool of 8 instances.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from sagellm_router.bench.options import BenchOptions, Outcome, Progress, Scenario

REPO = Path(__file__).resolve().parents[4]
LINE = re.compile(r"(\d+) pool\(s\) x (\d+) instances: .* in ([\d.]+)s; operator RSS ([\d.]+) "
                  r"MiB idle, ([\d.]+) MiB after")  # fmt: skip
COLUMNS = ("contender", "pools", "replicas", "seconds", "idle_rss_mib", "rss_mib")


def parse_lines(stdout: str) -> list[dict[str, Any]]:
    """One run per result line of ``operator_scale.py``."""
    out: list[dict[str, Any]] = []
    for m in LINE.finditer(stdout):
        pools, reps = int(m[1]), int(m[2])
        out.append({"contender": f"{pools}x{reps}", "kind": "operator", "pools": pools,
                    "replicas": reps, "seconds": float(m[3]), "idle_rss_mib": float(m[4]),
                    "rss_mib": float(m[5])})  # fmt: skip
    return out


def unavailable(name: str, why: str) -> Outcome:
    result: dict[str, Any] = {"scenario": name, "settings": {}, "available": False,
                              "notes": [f"{name}: not available - {why}"], "runs": []}  # fmt: skip
    return Outcome(result, [], ("contender",))


class OperatorScenario(Scenario):
    name = "operator"

    def steps(self, opts: BenchOptions) -> int:
        return 1

    def execute(self, opts: BenchOptions, out: Path, workdir: Path, progress: Progress) -> Outcome:
        script = REPO / "bench" / "operator_scale.py"
        if not script.exists():
            progress(1)
            return unavailable(self.name, f"{script} is not in this checkout")
        args = ["--pools", "1", "--replicas", "8"] if opts.quick else []
        argv = [sys.executable, "-m", "bench.operator_scale", *args]
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=1200,
                              check=False)  # fmt: skip
        progress(1)
        (workdir / "operator_scale.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
        found = parse_lines(proc.stdout)
        notes = [] if proc.returncode == 0 and found else [
            f"operator_scale.py exited with {proc.returncode}: {proc.stderr[-1500:]}"]  # fmt: skip
        result = {"scenario": self.name, "available": True, "notes": notes, "runs": found,
                  "settings": {"argv": argv[1:], "exit_code": proc.returncode}}  # fmt: skip
        return Outcome(result, found, COLUMNS)
