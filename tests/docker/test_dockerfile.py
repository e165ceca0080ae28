"""The Dockerfile's shape, and a real replay of its pip steps in a fresh virtualenv.

The replay copies what the builder stage COPYs into a scratch source tree, runs the builder's
``pip wheel`` there, installs the wheel the way the runtime stage does into a new virtualenv,
then runs the installed ``sagellm`` console script. A wheel missing a subpackage, package data
or a dependency fails here, not in a cluster.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dockerfile_parse import Instruction, Stage, parse

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def stages() -> dict[str, Stage]:
    _, parsed = parse(DOCKERFILE.read_text())
    return {s.name or str(i): s for i, s in enumerate(parsed)}


def test_two_stages_on_the_slim_python_base() -> None:
    by_name = stages()
    assert list(by_name) == ["builder", "runtime"]
    assert {s.base for s in by_name.values()} == {"python:3.11-slim"}


def test_runtime_runs_sagellm_as_uid_10001() -> None:
    runtime = stages()["runtime"]
    assert runtime.ops("USER")[-1].rest == "10001:10001"
    assert runtime.ops("ENTRYPOINT")[-1].exec_form() == ["sagellm"]
    useradd = [r.exec_form() for r in runtime.ops("RUN") if r.exec_form()[0] == "useradd"]
    assert len(useradd) == 1
    assert "--uid" in useradd[0]
    assert useradd[0][useradd[0].index("--uid") + 1] == "10001"


def test_every_run_is_exec_form() -> None:
    for stage in stages().values():
        for run in stage.ops("RUN") + stage.ops("ENTRYPOINT") + stage.ops("CMD"):
            run.exec_form()  # raises for shell form: no `&&` chains or shell tricks


def test_dockerignore_lets_every_copied_path_in() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for copy in stages()["builder"].ops("COPY"):
        *sources, _ = copy.rest.split()
        assert {s.rstrip("/") for s in sources} <= allowed, copy.rest


def test_parser_rejects_shell_form() -> None:
    with pytest.raises(ValueError, match="exec"):
        Instruction("RUN", (), "pip install x && rm -rf /x").exec_form()


def _pip_step(stage: Stage, verb: str) -> Instruction:
    steps = [r for r in stage.ops("RUN") if r.exec_form()[:2] == ["pip", verb]]
    assert len(steps) == 1, f"{verb}: expected one pip {verb} step"
    return steps[0]


def _copy_build_context(builder: Stage, root: Path, src: Path) -> None:
    for copy in builder.ops("COPY"):
        *sources, dest = copy.rest.split()
        for source in sources:
            origin = root / source
            target = src / (dest if dest not in ("./", ".") else "") / Path(source).name
            if source.endswith("/"):
                target = src / dest
            if origin.is_dir():
                shutil.copytree(origin, target, ignore=IGNORED)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target)


def _run(argv: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{argv} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


# Run by both interpreters: every module of the packages and the ones that fail to import
# (``__main__`` modules are listed, not imported: importing runs them).
IMPORT_ALL = """
import importlib, json, pkgutil
out = {"modules": [], "failed": {}}
for top in ("sagellm_core", "sagellm_operator", "sagellm_router", "sagellm_sim", "control_plane"):
    package = importlib.import_module(top)
    out["modules"].append(top)
    for info in pkgutil.walk_packages(package.__path__, top + "."):
        out["modules"].append(info.name)
        if info.name.endswith(".__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            out["failed"][info.name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


def _import_everything(python: str) -> tuple[set[str], dict[str, str]]:
    out = json.loads(_run([python, "-c", IMPORT_ALL]))
    return set(out["modules"]), out["failed"]


def replay(source: Path, tmp: Path) -> Path:
    """Run the Dockerfile's pip steps for ``source``; returns the new virtualenv."""
    by_name = stages()
    builder, runtime = by_name["builder"], by_name["runtime"]
    src, wheels, venv = tmp / "src", tmp / "wheels", tmp / "venv"
    _copy_build_context(builder, source, src)

    build = _pip_step(builder, "wheel").exec_form()
    assert "/wheels" in build
    build = [str(wheels) if a == "/wheels" else a for a in build[1:]]
    _run([sys.executable, "-m", "pip", *build], cwd=src)
    assert len(list(wheels.glob("sagellm_control_plane-0.1.0-*.whl"))) == 1

    install_step = _pip_step(runtime, "install")
    mount = install_step.flag("mount")
    assert (mount.get("from"), mount.get("target")) == ("builder", "/wheels")
    install = [str(wheels) if a == "/wheels" else a for a in install_step.exec_form()[1:]]
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "--quiet", *install])
    return venv


@pytest.mark.slow
def test_replay_the_install_steps_in_a_fresh_venv(tmp_path: Path) -> None:
    venv = replay(ROOT, tmp_path)
    python, sagellm = str(venv / "bin" / "python"), str(venv / "bin" / "sagellm")
    assert "Commands:" in _run([sagellm, "--help"])
    assert "0.1.0" in _run([sagellm, "--version"])
    dev_modules, dev_failed = _import_everything(sys.executable)
    modules, failed = _import_everything(python)
    absent = sorted(dev_modules - set(dev_failed) - modules)
    assert not absent, f"modules missing from the wheel (check pyproject packaging): {absent}"
    broken = {m: e for m, e in failed.items() if m not in dev_failed}
    assert not broken, f"modules that import in development but not from the wheel: {broken}"
    plan = json.loads(
        _run([sagellm, "plan", "--params", "70", "--gpus-per-node", "8", "-o", "json"])
    )
    assert plan["ok"] is True
    assert plan["tensor"] * plan["pipeline"] > 1, "70B on 80 GiB GPUs needs model parallelism"
    where = _run([python, "-c", "import sagellm_core; print(sagellm_core.__file__)"])
    assert where.startswith(str(venv)), f"imported from {where}, not from the installed wheel"
