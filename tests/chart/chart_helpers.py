"""Shared helpers of the chart tests: paths, running helm, picking manifests."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "sagellm"
HELM = ROOT / ".tools" / "bin" / "helm"
HELM3 = ROOT / ".tools" / "bin" / "helm3"
RELEASE = "sag"
NAMESPACE = "llm"

Manifest = dict[str, Any]
#: The ``render`` fixture: extra values -> the rendered manifests (CRDs excluded).
Render = Callable[[dict[str, Any]], list[Manifest]]


class HelmFailed(Exception):
    """helm exited non-zero; the message is its stderr."""


def run_helm(helm: Path, args: list[str], values: dict[str, Any], tmp: Path) -> str:
    """Run `helm <args> -f values.json`; returns stdout or raises HelmFailed(stderr)."""
    values_file = tmp / "values.json"
    values_file.write_text(json.dumps(values), encoding="utf-8")
    proc = subprocess.run(
        [str(helm), *args, "-f", str(values_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise HelmFailed(proc.stderr)
    return proc.stdout


def find(docs: list[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    """Manifests of ``kind`` (and ``name`` when given)."""
    return [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]


def one(docs: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]
