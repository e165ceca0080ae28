"""Every command the README shows is real: plans run, files and make targets exist, samples
are valid pools, and the links point at files in the repository."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sagellm_core.cli import main
from sagellm_core.validation import pool_problems

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text()


def shell_lines() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    lines: list[str] = []
    for block in blocks:
        joined = block.replace("\\\n", " ")
        lines += [ln.split("  #")[0].strip() for ln in joined.splitlines() if ln.strip()]
    return lines


def commands(program: str) -> list[list[str]]:
    return [shlex.split(ln) for ln in shell_lines() if ln.startswith(program + " ")]


@pytest.mark.parametrize("argv", commands("sagellm"), ids=" ".join)
def test_sagellm_commands_in_readme_succeed(argv: list[str]) -> None:
    result = CliRunner().invoke(main, argv[1:])
    assert result.exit_code == 0, result.output
    assert result.output.strip(), "the command printed nothing"


def test_make_targets_in_readme_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = {argv[1] for argv in commands("make")}
    targets |= set(re.findall(r"`make ([a-z-]+)`", README))
    assert {"run", "test"} <= targets
    for target in targets:
        assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.M), target


@pytest.mark.parametrize("argv", commands("kubectl"), ids=" ".join)
def test_kubectl_apply_files_are_valid_pools(argv: list[str]) -> None:
    if "apply" not in argv or "-f" not in argv:
        return
    path = ROOT / argv[argv.index("-f") + 1]
    assert path.exists(), path
    if path.is_file():
        assert pool_problems(yaml.safe_load(path.read_text())) == []


def test_helm_install_points_at_the_chart() -> None:
    (argv,) = commands("helm")
    assert (ROOT / argv[3] / "Chart.yaml").exists()


def test_links_point_at_files() -> None:
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if target.startswith("http"):
            continue
        assert (ROOT / target).exists(), f"README links to missing {target}"


def test_samples_named_in_readme_exist() -> None:
    for name in re.findall(r"`([a-z0-9-]+-pool\.yaml)`", README):
        assert (ROOT / "crds" / "samples" / name).exists(), name
