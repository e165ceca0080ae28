"""``slo``, ``pd`` and ``operator``: scenarios that need features landing elsewhere.

Each checks whether what it measures exists in this checkout and, if not, finishes at once with
a result whose note says what is missing (exit status 0, no runs). Checks:
* ``slo`` needs scheduling policies wired into the router's admission (a ``scheduling`` or
  ``admission`` section in the router or pool settings); the runner itself is still to be
  written, so today it always reports what is missing;
* ``pd`` needs prefill/decode orchestration in the router (``sagellm_router.pd``); same state;
* ``operator`` runs ``bench/operator_scale.py`` of the source checkout when it exists and
  keeps its stdout.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

from sagellm_router.bench.options import BenchOptions, Outcome, Progress, Scenario
from sagellm_router.config import PoolSettings, RouterSettings

REPO_BENCH = Path(__file__).resolve().parents[4] / "bench"


def _unavailable(name: str, why: str) -> Outcome:
    result: dict[str, Any] = {"scenario": name, "settings": {}, "available": False,
                              "notes": [f"{name}: not available - {why}"], "runs": []}  # fmt: skip
    return Outcome(result, [], ("contender",))


class SloScenario(Scenario):
    name = "slo"

    def steps(self, opts: BenchOptions) -> int:
        return 1

    def execute(self, opts: BenchOptions, out: Path, workdir: Path, progress: Progress) -> Outcome:
        progress(1)
        wired = {"scheduling", "admission"} & {
            *RouterSettings.model_fields,
            *PoolSettings.model_fields,
        }
        why = ("the router settings have no scheduling/admission section yet, so requests are "
               "admitted first come first served" if not wired else
               "scheduling is configurable but this scenario's runner is not written "
               "yet")  # fmt: skip
        return _unavailable(self.name, why)


class PdScenario(Scenario):
    name = "pd"

    def steps(self, opts: BenchOptions) -> int:
        return 1

    def execute(self, opts: BenchOptions, out: Path, workdir: Path, progress: Progress) -> Outcome:
        progress(1)
        if importlib.util.find_spec("sagellm_router.pd") is None:
            return _unavailable(self.name, "the router has no prefill/decode orchestration yet")
        return _unavailable(self.name, "PD orchestration exists but this runner is not written yet")


class OperatorScenario(Scenario):
    name = "operator"

    def steps(self, opts: BenchOptions) -> int:
        return 1

    def execute(self, opts: BenchOptions, out: Path, workdir: Path, progress: Progress) -> Outcome:
        script = REPO_BENCH / "operator_scale.py"
        if not script.exists():
            progress(1)
            return _unavailable(self.name, f"{script} is not in this checkout")
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              timeout=600, check=False)  # fmt: skip
        progress(1)
        run = {"contender": "operator", "exit_code": proc.returncode}
        result = {"scenario": self.name, "settings": {"script": str(script)}, "available": True,
                  "notes": [] if proc.returncode == 0 else [proc.stderr[-2000:]], "runs": [run],
                  "stdout": proc.stdout}  # fmt: skip
        return Outcome(result, [run], ("contender", "exit_code"))
