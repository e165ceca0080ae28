"""Embedding vectors, input parsing and the task flags (table-driven)."""

from __future__ import annotations

import math

import pytest

from sagellm_sim.cli import config_from_options
from sagellm_sim.config import SimConfig
from sagellm_sim.embeddings import EmbeddingBody, embedding_vector, parse_inputs
from sagellm_sim.errors import ApiError


@pytest.mark.parametrize(("text", "dim", "seed"), [("a", 1, 0), ("hello", 16, 0), ("x", 300, 7)])
def test_vectors_are_unit_length_and_deterministic(text: str, dim: int, seed: int) -> None:
    vector = embedding_vector(text, dim, seed)
    assert len(vector) == dim
    assert math.isclose(math.fsum(v * v for v in vector), 1.0, rel_tol=1e-9)
    assert vector == embedding_vector(text, dim, seed)
    assert vector != embedding_vector(text + "!", dim, seed) or dim == 1


def test_seed_changes_the_vector() -> None:
    assert embedding_vector("a", 8, 0) != embedding_vector("a", 8, 1)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("one", ["one"]),
        (["a", "b"], ["a", "b"]),
        ([1, 2], [[1, 2]]),
        ([[1], [2, 3]], [[1], [2, 3]]),
    ],
)
def test_parse_inputs_ok(raw: object, expected: list[object]) -> None:
    assert parse_inputs(EmbeddingBody(input=raw)) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "limit", "fragment"),
    [([], 10, "empty array"), ([""], 10, "input[0] is empty"),
     (["a", 1], 10, "input[1] must be a string or token ids, got int"),
     (["a"] * 3, 2, "at most 2")],
)  # fmt: skip
def test_parse_inputs_errors(raw: object, limit: int, fragment: str) -> None:
    with pytest.raises(ApiError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        parse_inputs(EmbeddingBody(input=raw), limit)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "task"),
    [({}, "generate"), ({"runner": "pooling"}, "embed"), ({"convert": "embed"}, "embed"),
     ({"runner": "generate"}, "generate")],
)  # fmt: skip
def test_task_from_runner_and_convert(fields: dict[str, str], task: str) -> None:
    assert SimConfig(**fields).task == task  # type: ignore[arg-type]


def test_bad_runner_and_dimension_are_refused() -> None:
    with pytest.raises(ValueError, match="--runner"):
        SimConfig(runner="magic")
    with pytest.raises(ValueError, match="--sim-embedding-dim"):
        SimConfig(sim_embedding_dim=0)


def test_cli_legacy_task_flag_means_pooling() -> None:
    from click.testing import CliRunner

    from sagellm_sim.cli import sim

    ctx = sim.make_context("sim", ["m", "--task", "embed", "--sim-embedding-dim", "32"])
    config = config_from_options(dict(ctx.params), [])
    assert (config.task, config.sim_embedding_dim) == ("embed", 32)
    assert CliRunner().invoke(sim, ["m", "--runner", "nope"]).exit_code == 2
