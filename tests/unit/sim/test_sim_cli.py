"""`sagellm sim` argument handling: vLLM flags in, typed config out."""

from __future__ import annotations

import click
import pytest

from sagellm_sim.cli import config_from_options, sim, split_vllm_args
from sagellm_sim.config import Faults, KvTransferConfig, SimConfig
from sagellm_sim.kv_events import KvEventsConfig


def parse(*args: str) -> SimConfig:
    ctx = sim.make_context("sim", list(args))
    return config_from_options(ctx.params, ctx.meta["sagellm_sim.unknown_args"] + ctx.args)


@pytest.mark.parametrize(
    ("args", "kept", "unknown"),
    [
        (["m", "--trust-remote-code", "--port", "1"], ["m", "--port", "1"],
         ["--trust-remote-code"]),
        (["--swap-space", "4", "m"], ["m"], ["--swap-space", "4"]),
        (["--max_num_seqs", "8"], ["--max-num-seqs", "8"], []),
        (["--enable-chunked-prefill", "m"], ["m"], ["--enable-chunked-prefill"]),
        (["-dpl", "2", "--quantization=fp8"], [], ["-dpl", "2", "--quantization=fp8"]),
    ],
)  # fmt: skip
def test_split(args: list[str], kept: list[str], unknown: list[str]) -> None:
    known = {"--port", "--max-num-seqs"}
    assert split_vllm_args(args, known) == (kept, unknown)


def test_operator_style_argv() -> None:
    cfg = parse(
        "meta-llama/Llama-3.1-70B-Instruct", "--served-model-name", "llama70", "--host", "0.0.0.0",
        "--port", "8080", "-tp", "4", "--pipeline_parallel_size", "1", "-dp", "2",
        "--max-model-len", "32k", "--max-num-seqs", "64", "--max-num-batched-tokens", "4096",
        "--gpu-memory-utilization", "0.92", "--block-size", "32", "--no-enable-prefix-caching",
        "--kv-transfer-config", '{"kv_connector":"NixlConnector","kv_role":"kv_producer"}',
        "--dtype", "bfloat16", "--enable-expert-parallel", "--trust-remote-code",
        "--distributed-executor-backend", "mp", "--sim-profile", "llama-3.1-70b-h100",
        "--sim-time-scale", "0.01", "--sim-error-rate", "0.5", "--sim-admin",
    )  # fmt: skip
    assert (cfg.model, cfg.served_name, cfg.port) == ("meta-llama/Llama-3.1-70B-Instruct",
                                                     "llama70", 8080)  # fmt: skip
    assert (cfg.tensor_parallel_size, cfg.data_parallel_size, cfg.max_model_len) == (4, 2, 32000)
    assert cfg.block_size == 32
    assert not cfg.enable_prefix_caching
    assert cfg.enable_expert_parallel
    assert cfg.kv_transfer is not None
    assert cfg.kv_transfer.kv_role == "kv_producer"
    assert cfg.sim_faults.error_rate == 0.5
    assert cfg.sim_admin
    assert cfg.sim_time_scale == 0.01
    assert "--distributed-executor-backend" in cfg.extra_args


def test_model_flag_and_defaults() -> None:
    cfg = parse("--model", "org/m", "--seed", "7")
    assert cfg.served_name == "org/m"
    assert cfg.sim_seed == 7
    assert cfg.enable_prefix_caching


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        ("[1]", "JSON object"),
        ('{"kv_role":"kv_both"}', "kv_connector"),
        ('{"kv_connector":"NixlConnector","kv_role":"prefill"}', "kv_role"),
    ],
)
def test_bad_kv_transfer_config(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KvTransferConfig.parse(text)


@pytest.mark.parametrize(("text", "message"), [("not json", "not valid JSON"), ("[1]", "object")])
@pytest.mark.parametrize("flag", [KvTransferConfig, KvEventsConfig])
def test_json_flags_name_themselves(flag: type, text: str, message: str) -> None:
    name = "--kv-transfer-config" if flag is KvTransferConfig else "--kv-events-config"
    with pytest.raises(ValueError, match=f"^{name} .*{message}"):
        flag.parse(text)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"error_rate": 2}, "error_rate"),
        ({"error_rate": "x"}, "error_rate"),
        ({"slow_factor": 0}, "slow_factor"),
        ({"crash_after": -1}, "crash_after"),
        ({"stall_after_tokens": 1.5}, "stall_after_tokens"),
        ({"explode": True}, "unknown fault"),
    ],
)
def test_fault_updates_are_validated(changes: dict[str, object], message: str) -> None:
    faults = Faults()
    with pytest.raises(ValueError, match=message):
        faults.update(changes)
    assert faults == Faults()


def test_bad_numbers_are_usage_errors() -> None:
    with pytest.raises(ValueError, match="--tensor-parallel-size"):
        parse("m", "-tp", "0")
    with pytest.raises(click.BadParameter):
        sim.make_context("sim", ["--max-model-len", "lots"])


def test_shutdown_timeout_and_kv_events_config_are_parsed() -> None:
    assert parse("m").shutdown_timeout == 0  # vLLM's default: abort on SIGTERM
    assert parse("m", "--shutdown-timeout", "30").shutdown_timeout == 30
    with pytest.raises(ValueError, match="--shutdown-timeout"):
        parse("m", "--shutdown-timeout=-1")
    config = parse("m", "--kv-events-config", '{"enable_kv_cache_events": true, "topic": "kv"}')
    assert config.kv_events is not None
    assert (config.kv_events.publishes, config.kv_events.topic) == (True, "kv")
    assert parse("m").kv_events is None
    with pytest.raises(ValueError, match="hwm"):
        parse("m", "--kv-events-config", '{"enable_kv_cache_events": true, "hwm": 0}')


def test_chunked_prefill_flag_as_vllm() -> None:
    assert parse("m").enable_chunked_prefill is True
    off = parse("m", "--no-enable-chunked-prefill", "--max-model-len", "4096")
    assert off.enable_chunked_prefill is False
    with pytest.raises(ValueError, match=r"max_num_batched_tokens \(2048\) is smaller"):
        parse("m", "--no-enable-chunked-prefill", "--max-model-len", "4096",
              "--max-num-batched-tokens", "2048")  # fmt: skip
