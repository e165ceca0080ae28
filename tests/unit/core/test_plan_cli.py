"""``sagellm plan`` through click's CliRunner: JSON per seed row, table output, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from sagellm_core.cli import main
from sagellm_core.plan_cli import plan

SAMPLES = Path(__file__).resolve().parents[3] / "crds" / "samples"


def run(*args: str) -> Any:
    return CliRunner().invoke(plan, list(args))


def run_json(*args: str) -> dict[str, Any]:
    result = run(*args, "-o", "json")
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


# One row per seed rule: (args, (tensor, pipeline, data, expert)).
JSON_ROWS = [
    (["--params", "7"], (1, 1, 1, 1)),
    (["--params", "7", "--gpu-memory", "16"], (2, 1, 1, 1)),
    (["--params", "20"], (4, 1, 1, 1)),
    (["--params", "70"], (4, 1, 1, 1)),
    (["--params", "70", "--gpu-memory", "32"], (8, 1, 1, 1)),
    (["--params", "120", "--gpu-memory", "40"], (4, 2, 1, 1)),
    (["--params", "405", "--gpu-memory", "32"], (8, 4, 1, 1)),
    (["--params", "405"], (8, 2, 1, 1)),
    (["--params", "405", "--dtype", "fp8"], (8, 1, 1, 1)),
    (["--params", "120", "--gpu-memory", "40", "--gpus", "16"], (4, 2, 2, 1)),
    (["--params", "20", "--gpus", "12"], (4, 1, 3, 1)),
    (["--params", "40", "--gpus", "4"], (4, 1, 1, 1)),
    (["--params", "7", "--gpu-memory", "16", "--gpus", "2"], (2, 1, 1, 1)),
    (["--params", "47", "--moe", "--experts", "64", "--gpus", "8"], (4, 1, 2, 8)),
    (["--params", "70", "--strategy", "tp", "--tensor", "8"], (8, 1, 1, 1)),
    (["--params", "70", "--strategy", "PP"], (1, 2, 1, 1)),
]

STABLE_KEYS = [
    "ok", "input", "role", "strategy", "layout", "tensor", "pipeline", "data", "expert",
    "expert_parallel", "gpus_per_instance", "nodes_per_instance", "memory_per_gpu_gib",
    "kv_bytes_per_token_per_gpu", "max_concurrent_sequences", "model_shape", "reasons",
    "warnings", "errors",
]  # fmt: skip


@pytest.mark.parametrize(("args", "expected"), JSON_ROWS)
def test_json_per_seed_row(args: list[str], expected: tuple[int, ...]) -> None:
    data = run_json(*args)
    assert list(data) == STABLE_KEYS
    assert data["ok"] is True
    assert (data["tensor"], data["pipeline"], data["data"], data["expert"]) == expected
    assert data["gpus_per_instance"] == expected[0] * expected[1] * expected[2]
    assert data["reasons"]
    mem = data["memory_per_gpu_gib"]
    total = mem["weights"] + mem["overhead"] + mem["kv_cache"]
    assert total == pytest.approx(mem["budget"], abs=0.02)


def test_json_echoes_input_and_shape() -> None:
    data = run_json(
        "--params", "8", "--layers", "36", "--max-model-len", "4096", "--role", "Decode"
    )
    assert data["input"]["max_model_len"] == 4096
    assert data["role"] == "Decode"
    assert data["model_shape"] == {
        "layers": 36, "attention_heads": 32, "kv_heads": 8, "head_dim": 128, "estimated": False,
    }  # fmt: skip
    assert data["kv_bytes_per_token_per_gpu"] == 2 * 36 * 8 * 128 * 2


def test_table_output_is_readable_with_reasons() -> None:
    result = run("--params", "70", "--gpu-memory", "80", "--gpus-per-node", "8")
    assert result.exit_code == 0
    out = result.stdout
    assert out.startswith("Plan for 70B bf16 Dense, role General, strategy Auto: OK")
    assert "layout             TP4  (tensor 4, pipeline 1, data 1, expert 1)" in out
    assert "GPUs per instance  4 on 1 node(s) of 8 × 80 GiB" in out
    assert "80 KiB/token/GPU" in out
    assert "Why:\n  - model shape estimated" in out
    assert "30–70B → TP4" in out
    assert result.stderr == ""


def test_table_shows_warnings() -> None:
    result = run("--params", "40", "--gpus", "6")
    assert result.exit_code == 0
    assert "Warnings:\n  - 2 of 6 GPUs stay idle" in result.stdout


# (args, phrase in the one-line stderr error)
ERROR_ROWS = [
    (["--params", "abc"], "Invalid value for '--params'"),
    (["--params", "7", "--dtype", "q9"], "Invalid value for '--dtype'"),
    (["--params", "7", "--strategy", "Magic"], "Invalid value for '--strategy'"),
    ([], "give --params (billions of parameters) or -f POOL.yaml"),
    (["--params", "0"], "params must be a positive number"),
    (["--params", "7", "--gpu-memory", "-1"], "gpu memory must be a positive number"),
    (["--params", "7", "--gpus", "0"], "gpus must be a positive number"),
    (["--params", "7", "--max-model-len", "0"], "max model len must be a positive number"),
    (["--params", "7", "--moe"], "a MoE model needs experts"),
    (["--params", "7", "--strategy", "TP", "--pipeline", "2"], "strategy TP with pipeline=2"),
    (["--params", "7", "--strategy", "EP"], "expert parallelism needs a MoE model"),
    (["--params", "7", "--tensor", "2"], "need a strategy other than Auto"),
    (["--params", "7", "--strategy", "TP", "--tensor", "8", "--heads", "28", "--kv-heads", "4"],
     "does not divide the 28 attention heads"),
    (["--params", "70", "--strategy", "Hybrid", "--tensor", "4", "--pipeline", "2",
      "--gpus", "4"], "needs 8 GPUs but only 4 are available"),
    (["--params", "400", "--gpu-memory", "24", "--gpus", "2"],
     "does not fit on 2 GPU(s) × 24 GiB"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "phrase"), ERROR_ROWS)
def test_errors_are_one_line_on_stderr_with_exit_2(args: list[str], phrase: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines
    assert all(line.startswith("Error: ") for line in lines)
    assert any(phrase in line for line in lines), result.stderr
    assert "Usage:" not in result.stderr


def test_impossible_plan_json_still_prints_the_plan() -> None:
    result = run("--params", "400", "--gpu-memory", "24", "--gpus", "2", "-o", "json")
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert "Fix: use 40 GPUs" in data["errors"][0]


def test_plan_is_a_subcommand_of_sagellm() -> None:
    result = CliRunner().invoke(main, ["plan", "--params", "70", "-o", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tensor"] == 4
    bad = CliRunner().invoke(main, ["plan", "--params", "x"])
    assert bad.exit_code == 2
    assert bad.stderr.strip().startswith("Error: Invalid value for '--params'")


def test_a_pool_file_is_planned_per_role(tmp_path: Path) -> None:
    result = run("-f", str(SAMPLES / "pd-pool.yaml"), "-o", "json")
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert [p["role"] for p in plan["plan"]] == ["Prefill", "Decode"]
    assert plan["errors"] == []


def test_an_invalid_pool_file_names_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: sagellm.io/v1alpha1\nkind: InferencePool\nmetadata: {name: x}\n"
        "spec: {model: {name: m, source: m, parameters: -1}, roles: {general: {}}}\n"
    )
    result = run("-f", str(bad))
    assert result.exit_code == 2
    assert "parameters" in result.stderr


def test_a_pool_file_shows_the_gpus_at_max_replicas(tmp_path: Path) -> None:
    pool = yaml.safe_load((SAMPLES / "pd-pool.yaml").read_text())
    result = run("-f", str(SAMPLES / "pd-pool.yaml"), "-o", "json")
    assert json.loads(result.stdout)["maxGPUs"] == 1 * 1 + 2 * 2  # prefill TP1 ×1, decode TP2 ×2
    pool["spec"]["autoscaling"] = {"enabled": True, "decode": {"minReplicas": 0, "maxReplicas": 5}}
    path = tmp_path / "auto.yaml"
    path.write_text(yaml.safe_dump(pool))
    result = run("-f", str(path))
    assert result.exit_code == 0, result.stderr
    assert "GPUs at max replicas: 11" in result.stdout  # decode may reach 5 × 2
