"""Roofline cost model: capacity, parallelism effects, monotonicity."""

from __future__ import annotations

import pytest

from sagellm_sim.profiles import CostModel, Parallelism, StepWork, builtin_profiles, get_profile


def cost(profile: str = "llama-3.1-8b-h100", tp: int = 1, pp: int = 1) -> CostModel:
    return CostModel(get_profile(profile), Parallelism(tp, pp))


@pytest.mark.parametrize(
    ("profile", "tp", "low", "high"),
    [  # KV tokens that fit, order of magnitude checked against vLLM start-up logs' range
        ("llama-3.1-8b-h100", 1, 300_000, 500_000),
        ("llama-3.1-8b-a100", 1, 300_000, 500_000),
        ("llama-3.1-70b-h100", 4, 300_000, 700_000),
    ],
)
def test_kv_capacity_is_in_the_expected_range(profile: str, tp: int, low: int, high: int) -> None:
    tokens = cost(profile, tp).num_gpu_blocks(0.9, 16) * 16
    assert low < tokens < high


def test_70b_does_not_fit_one_gpu_and_says_how_to_fix_it() -> None:
    with pytest.raises(ValueError, match="--tensor-parallel-size"):
        cost("llama-3.1-70b-h100", tp=1).num_gpu_blocks(0.9, 16)


def test_more_tp_gives_more_kv_and_faster_but_sublinear_steps() -> None:
    work = StepWork(prefill_tokens=4096, prefill_attention=4096 * 2048)
    t1, t2, t4 = (cost("llama-3.1-70b-h100", tp).step_seconds(work) for tp in (2, 4, 8))
    assert t1 > t2 > t4
    assert t1 / t4 < 4  # four times the GPUs, less than four times faster
    blocks = [cost("llama-3.1-70b-h100", tp).num_gpu_blocks(0.9, 16) for tp in (2, 4, 8)]
    assert blocks == sorted(blocks)


def test_pipeline_parallel_adds_hop_latency_but_not_speed() -> None:
    work = StepWork(decode_seqs=8, decode_context=8 * 1000)
    assert cost("llama-3.1-70b-h100", 4, 2).step_seconds(work) > 0
    single = cost("llama-3.1-8b-h100", 1, 1).step_seconds(work)
    assert cost("llama-3.1-8b-h100", 1, 2).step_seconds(work) >= single


@pytest.mark.parametrize(
    ("small", "large"),
    [
        (StepWork(decode_seqs=1, decode_context=100),
         StepWork(decode_seqs=64, decode_context=6400)),
        (StepWork(decode_seqs=8, decode_context=800),
         StepWork(decode_seqs=8, decode_context=80000)),
        (StepWork(prefill_tokens=128, prefill_attention=128 * 128),
         StepWork(prefill_tokens=8192, prefill_attention=8192 * 8192)),
    ],
)  # fmt: skip
def test_step_time_grows_with_batch_context_and_prompt(small: StepWork, large: StepWork) -> None:
    c = cost()
    assert c.step_seconds(small) < c.step_seconds(large)


def test_single_stream_decode_speed_matches_public_figures() -> None:
    """Llama-3.1-8B bf16 on one H100: roughly 100-200 tokens/s for one stream."""
    step = cost().step_seconds(StepWork(decode_seqs=1, decode_context=1000))
    assert 100 < 1 / step < 200


def test_empty_step_costs_nothing_and_transfer_grows_with_tokens() -> None:
    c = cost()
    assert c.step_seconds(StepWork()) == 0.0
    assert c.kv_transfer_seconds(100) < c.kv_transfer_seconds(10_000)


def test_unknown_profile_lists_the_choices() -> None:
    with pytest.raises(ValueError, match=r"llama-3\.1-8b-h100"):
        get_profile("gpt-9")
    assert "tiny" in builtin_profiles()


def test_parallelism_must_be_positive() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        Parallelism(0, 1)
