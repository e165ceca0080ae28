"""Make the example plugins discoverable without pip: a ``.dist-info`` on a temporary path.

``install(tmp)`` writes ``sagellm_test_plugins-0.1.0.dist-info`` (METADATA + entry_points.txt
from this package's pyproject.toml) into ``tmp`` and returns the directories to put on
``sys.path`` (or ``PYTHONPATH`` for a subprocess): ``tmp`` and this package's source folder.
``importlib.metadata`` then finds the entry points exactly as for an installed distribution.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent


def entry_points_txt() -> str:
    project = tomllib.loads((HERE / "pyproject.toml").read_text())["project"]
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {value}" for name, value in entries.items()]
        lines.append("")
    return "\n".join(lines)


def install(tmp: Path) -> list[str]:
    info = tmp / "sagellm_test_plugins-0.1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: sagellm-test-plugins\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text(entry_points_txt())
    return [str(tmp), str(HERE)]
