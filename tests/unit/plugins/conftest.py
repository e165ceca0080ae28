"""The example plugin package made discoverable on a temporary sys.path entry."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PLUGIN_PKG = str(Path(__file__).resolve().parents[2] / "plugin_pkg")
if PLUGIN_PKG not in sys.path:
    sys.path.insert(0, PLUGIN_PKG)


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dist_info import install

    for entry in reversed(install(tmp_path)):
        monkeypatch.syspath_prepend(entry)
