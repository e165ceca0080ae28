"""The seed types' own rules (pure): short forms, aliases, sampling parameters, parallelism."""

from __future__ import annotations

import pytest

from control_plane import ExecutionInstance, ParallelismConfig, RequestMetadata, SamplingParams
from control_plane.types import ParallelismType, sampling_body


def test_parallelism_short_names_are_the_same_members() -> None:
    assert ParallelismType.TP is ParallelismType.TENSOR_PARALLEL
    assert ParallelismType.PP is ParallelismType.PIPELINE_PARALLEL
    assert ParallelismType.DP is ParallelismType.DATA_PARALLEL
    assert ParallelismType.EP is ParallelismType.EXPERT_PARALLEL


def test_instance_short_form_reads_the_engine_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAGELLM_ENGINE_URL", raising=False)
    assert ExecutionInstance(instance_id="a").url == "http://localhost:8000"
    monkeypatch.setenv("SAGELLM_ENGINE_URL", "http://10.0.0.7:9001")
    short = ExecutionInstance(instance_id="b", tensor_parallel_size=4, pipeline_parallel_size=2)
    assert (short.url, short.model_name, short.parallelism) == (
        "http://10.0.0.7:9001", None, ParallelismType.HYBRID,
    )  # fmt: skip
    assert ExecutionInstance(instance_id="c", host="h", port=1).url == "http://h:1"


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [({"instance_id": ...}, TypeError, "needs instance_id='a-name'"),
     ({"instance_id": "x", "gpu_count": 0}, ValueError, "gpu_count must be >= 1"),
     ({"instance_id": "x", "executor": "grpc"}, ValueError, "executor 'grpc'"),
     ({"instance_id": "x", "colour": "red"}, TypeError, "colour")],
)  # fmt: skip
def test_instance_refuses_what_it_cannot_use(
    kw: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        ExecutionInstance(**kw)  # type: ignore[arg-type]


def test_request_ids_are_generated_and_distinct() -> None:
    a, b = RequestMetadata(), RequestMetadata()
    assert a.request_id != b.request_id
    assert len(a.request_id) == 32


def test_sampling_body_from_ours_a_dict_or_a_lookalike() -> None:
    assert sampling_body(SamplingParams(temperature=0.7, top_p=0.9, max_tokens=512)) == {
        "n": 1, "temperature": 0.7, "top_p": 0.9, "max_tokens": 512, "presence_penalty": 0.0,
        "frequency_penalty": 0.0, "repetition_penalty": 1.0,
    }  # fmt: skip

    class VllmLike:  # vLLM's SamplingParams: attributes, top_k=0 meaning "off"
        temperature, top_p, top_k, max_tokens, n = 0.1, 1.0, 0, 7, 1

    assert sampling_body(VllmLike())["max_tokens"] == 7
    assert "top_k" not in sampling_body(VllmLike())
    assert sampling_body({"max_tokens": 3}) == {"max_tokens": 3}
    with pytest.raises(TypeError, match=r"unknown sampling parameters \['temp'\]"):
        sampling_body({"temp": 1})


@pytest.mark.parametrize(
    ("supported", "gpus", "expected"),
    [(["TP", "PP", "Hybrid"], 16, (4, 2, 2)), (["TP", "PP", "Hybrid"], 8, (4, 1, 2)),
     (["TP"], 16, (4, 1, 1)), (["PP", "DP"], 16, (1, 2, 1)), (["TP", "PP", "Hybrid"], 3, (2, 1, 1)),
     (["DP"], 12, (1, 1, 12)), (["TP", "DP", "Hybrid"], 6, (4, 1, 1))],
)  # fmt: skip
def test_parallelism_config_applies_the_seed_rules_within_the_allowed_strategies(
    supported: list[str], gpus: int, expected: tuple[int, int, int]
) -> None:
    plan = ParallelismConfig(auto_optimize=True, supported_strategies=supported).recommend(gpus)
    got = (plan["tensor_parallel_size"], plan["pipeline_parallel_size"], plan["data_parallel_size"])
    assert got == expected


def test_parallelism_config_manual_and_bad_names() -> None:
    manual = ParallelismConfig(auto_optimize=False, tensor_parallel_size=2, data_parallel_size=3)
    assert manual.recommend(64)["data_parallel_size"] == 3
    with pytest.raises(ValueError, match="unknown parallelism strategies"):
        ParallelismConfig(supported_strategies=["TP", "ZeRO"])
