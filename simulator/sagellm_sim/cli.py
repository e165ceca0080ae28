"""``sagellm sim``: accepts ``vllm serve`` arguments and serves a simulated engine.

vLLM spellings work: positional model or ``--model``, short ``-tp/-pp/-dp/-ep``, ``--flag_name``
with underscores, ``--flag=value``. Unknown vLLM flags are accepted and logged, never fatal: an
unknown ``--flag`` takes the next token as its value unless that token starts with ``-`` or the
flag looks boolean (``--enable-*``, ``--disable-*``, ``--no-*`` or a known boolean flag).
Simulator-only knobs start with ``--sim-``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import click

from sagellm_sim.config import Faults, KvTransferConfig, SimConfig
from sagellm_sim.kv_events import KvEventsConfig
from sagellm_sim.profiles import builtin_profiles

log = logging.getLogger("sagellm_sim.cli")
F = TypeVar("F", bound=Callable[..., Any])

BOOLEAN_VLLM_FLAGS = frozenset({
    "--trust-remote-code", "--enforce-eager", "--headless", "--skip-tokenizer-init",
    "--async-scheduling", "--data-parallel-hybrid-lb", "--data-parallel-external-lb",
    "--data-parallel-multi-port-external-lb", "--tokens-only", "--kv-cache-metrics",
    "-dph", "-dpe", "-dpm",
})  # fmt: skip
BOOLEAN_PREFIXES = ("--enable-", "--disable-", "--no-")


def split_vllm_args(args: list[str], known: set[str]) -> tuple[list[str], list[str]]:
    """Split argv into what this command declares and unknown vLLM flags (with values)."""
    kept: list[str] = []
    unknown: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--") and "_" in arg.split("=", 1)[0]:
            name, eq, value = arg.partition("=")
            arg = name.replace("_", "-") + eq + value
        name = arg.split("=", 1)[0]
        if not arg.startswith("-") or arg == "-" or name in known:
            kept.append(arg)
            i += 1
            continue
        unknown.append(arg)
        takes_value = "=" not in arg and not (
            name in BOOLEAN_VLLM_FLAGS or name.startswith(BOOLEAN_PREFIXES)
        )
        if takes_value and i + 1 < len(args) and not args[i + 1].startswith("-"):
            unknown.append(args[i + 1])
            i += 1
        i += 1
    return kept, unknown


class SimCommand(click.Command):
    """A click command that tolerates every ``vllm serve`` flag it does not model."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        known = {"--help", "-h"}
        for param in self.params:
            if isinstance(param, click.Option):
                known.update(param.opts)
                known.update(param.secondary_opts)
        kept, unknown = split_vllm_args(args, known)
        ctx.meta["sagellm_sim.unknown_args"] = unknown
        return super().parse_args(ctx, kept)


def _model_len(value: str) -> int:
    """vLLM accepts human-readable lengths such as 32k or 1M."""
    text = value.strip().lower()
    scale = {"k": 1000, "m": 1000**2}.get(text[-1:], 1)
    try:
        return int(float(text[:-1] if scale > 1 else text) * scale)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a length like 4096 or 32k") from exc


def _opt(*names: str, **kw: Any) -> Callable[[F], F]:
    return click.option(*names, show_default=True, **kw)


@click.command(
    "sim", cls=SimCommand,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                      "help_option_names": ["-h", "--help"]},
)  # fmt: skip
@click.argument("model_tag", required=False)
@_opt("--model", default=None, help="Model path or id (the positional tag wins).")
@_opt("--served-model-name", "served", multiple=True, help="Name(s) served in the API.")
@_opt("--host", default="0.0.0.0")
@_opt("--port", default=8000, type=int)
@_opt("--tensor-parallel-size", "-tp", "tp", default=1, type=int)
@_opt("--pipeline-parallel-size", "-pp", "pp", default=1, type=int)
@_opt("--data-parallel-size", "-dp", "dp", default=1, type=int)
@_opt("--max-model-len", default=None, type=_model_len, help="Default: the profile model's.")
@_opt("--max-num-seqs", default=256, type=int)
@_opt("--max-num-batched-tokens", default=8192, type=int)
@_opt("--enable-chunked-prefill/--no-enable-chunked-prefill", default=True)
@_opt("--gpu-memory-utilization", default=0.92, type=float)
@_opt("--block-size", default=16, type=int)
@_opt("--enable-prefix-caching/--no-enable-prefix-caching", default=True)
@_opt("--num-gpu-blocks-override", default=None, type=int)
@_opt("--kv-transfer-config", default=None, help="JSON, as for vLLM.")
@_opt("--kv-events-config", default=None, help="JSON, as for vLLM: publish KV-cache events.")
@_opt("--dtype", default="auto")
@_opt("--enable-expert-parallel", "-ep", is_flag=True, default=False)
@_opt("--enable-prompt-tokens-details", is_flag=True, default=False)
@_opt(
    "--shutdown-timeout",
    default=0,
    type=int,
    help="On SIGTERM: 0 aborts in-flight requests; N > 0 drains them for up to N s (as vLLM).",
)
@_opt("--seed", "vllm_seed", default=None, type=int, help="vLLM's seed (used if no --sim-seed).")
@_opt(
    "--runner",
    default="auto",
    type=click.Choice(["auto", "generate", "pooling", "draft"]),
    help="pooling: serve an embedding model (/v1/embeddings).",
)
@_opt("--convert", default="auto", help="embed: run the model as an embedding model.")
@_opt("--task", "legacy_task", default=None, help="Older vLLM spelling: embed = --runner pooling.")
@_opt("--sim-embedding-dim", default=None, type=int, help="Default: the model's hidden size.")
@_opt("--sim-profile", default="llama-3.1-8b-h100", type=click.Choice(sorted(builtin_profiles())))
@_opt("--sim-time-scale", default=1.0, type=float, help="0.01 runs 100x faster than real time.")
@_opt("--sim-seed", default=None, type=int)
@_opt("--sim-error-rate", default=0.0, type=float, help="Fraction of requests failing with 500.")
@_opt("--sim-crash-after", default=None, type=int, help="Exit after N generation requests.")
@_opt("--sim-slow-factor", default=1.0, type=float, help="Multiply every step duration.")
@_opt("--sim-stall-after-tokens", default=None, type=int)
@_opt("--sim-cut-stream-after-tokens", default=None, type=int)
@_opt("--sim-startup-delay", default=0.0, type=float, help="Seconds before the port listens.")
@_opt("--sim-admin", is_flag=True, default=False, help="Enable POST /sim/faults.")
@_opt("--sim-max-waiting", default=None, type=int, help="Answer 503 beyond this queue length.")
@_opt("--sim-kv-hold-seconds", default=None, type=float, help="PD abort timeout (default 480).")
@_opt("--sim-advertise-host", default=None, help="remote_host given to decode instances.")
@_opt("--sim-log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
@click.pass_context
def sim(ctx: click.Context, /, **opts: Any) -> None:
    """Run a vLLM-compatible simulated engine (same flags, API and metrics as `vllm serve`)."""
    logging.basicConfig(
        level=opts.pop("sim_log_level").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    unknown = [*ctx.meta.get("sagellm_sim.unknown_args", []), *ctx.args]
    try:
        config = config_from_options(opts, unknown)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if unknown:
        log.info("ignoring vLLM arguments the simulator does not model: %s", " ".join(unknown))
    from sagellm_sim.server import build_app, run_server

    try:
        app = build_app(config)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_server(config, app=app))


def config_from_options(opts: dict[str, Any], unknown: list[str]) -> SimConfig:
    """Build the typed config from click's parsed options (raises ValueError on bad input)."""
    model = opts["model_tag"] or opts["model"] or "meta-llama/Llama-3.1-8B-Instruct"
    kvt = opts["kv_transfer_config"]
    faults = Faults(
        error_rate=opts["sim_error_rate"], crash_after=opts["sim_crash_after"],
        slow_factor=opts["sim_slow_factor"], stall_after_tokens=opts["sim_stall_after_tokens"],
        cut_stream_after_tokens=opts["sim_cut_stream_after_tokens"],
    )  # fmt: skip
    extra: dict[str, Any] = {}
    if opts["sim_kv_hold_seconds"] is not None:
        extra["sim_kv_hold_seconds"] = opts["sim_kv_hold_seconds"]
    seed = opts["sim_seed"] if opts["sim_seed"] is not None else opts["vllm_seed"]
    runner = opts["runner"]
    if opts["legacy_task"] in ("embed", "embedding"):
        runner = "pooling"
    return SimConfig(
        model=model, served_model_names=tuple(opts["served"]), host=opts["host"],
        port=opts["port"], tensor_parallel_size=opts["tp"], pipeline_parallel_size=opts["pp"],
        data_parallel_size=opts["dp"], max_model_len=opts["max_model_len"],
        max_num_seqs=opts["max_num_seqs"], max_num_batched_tokens=opts["max_num_batched_tokens"],
        enable_chunked_prefill=opts["enable_chunked_prefill"],
        gpu_memory_utilization=opts["gpu_memory_utilization"], block_size=opts["block_size"],
        enable_prefix_caching=opts["enable_prefix_caching"],
        num_gpu_blocks_override=opts["num_gpu_blocks_override"],
        kv_transfer=KvTransferConfig.parse(kvt) if kvt else None, dtype=opts["dtype"],
        kv_events=KvEventsConfig.parse(kve) if (kve := opts["kv_events_config"]) else None,
        enable_expert_parallel=opts["enable_expert_parallel"],
        enable_prompt_tokens_details=opts["enable_prompt_tokens_details"],
        shutdown_timeout=opts["shutdown_timeout"],
        extra_args=tuple(unknown), sim_profile=opts["sim_profile"],
        sim_time_scale=opts["sim_time_scale"], sim_seed=seed or 0, sim_faults=faults,
        sim_startup_delay=opts["sim_startup_delay"], sim_admin=opts["sim_admin"],
        sim_max_waiting=opts["sim_max_waiting"], sim_advertise_host=opts["sim_advertise_host"],
        runner=runner, convert=opts["convert"], sim_embedding_dim=opts["sim_embedding_dim"],
        **extra,
    )  # fmt: skip
