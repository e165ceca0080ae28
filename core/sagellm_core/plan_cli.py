"""``sagellm plan``: print the parallelism plan for a model on given GPUs.

Exit codes: 0 when the plan is ok; 2 on bad input or an impossible plan (each error is one line
on stderr; ``-o json`` still prints the full plan, errors included, on stdout).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml

from sagellm_core.api.common import Architecture, ParallelismStrategy, Role
from sagellm_core.planner import KVCacheDType, Plan, PlanRequest, WeightDType, plan_pool
from sagellm_core.planner import plan as make_plan
from sagellm_core.planner.memory import complete_shape
from sagellm_core.validation import parse_pool, pool_problems

EXIT_BAD_INPUT = 2


class OneLineUsageError(click.UsageError):
    """A usage error shown as a single ``Error: …`` line (no usage banner)."""

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


class PlanCommand(click.Command):
    """Reports option parsing errors on one line."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise OneLineUsageError(exc.format_message(), ctx) from exc


def _choice(enum: Any) -> click.Choice[str]:
    return click.Choice([str(e) for e in enum], case_sensitive=False)


def _canonical(enum: Any, value: str) -> Any:
    return next(e for e in enum if str(e).lower() == value.lower())


def build_request(o: dict[str, Any]) -> PlanRequest:
    """The planner request from parsed options."""
    known = {"layers": o["layers"], "attention_heads": o["heads"],
             "kv_heads": o["kv_heads"], "head_dim": o["head_dim"]}  # fmt: skip
    return PlanRequest(
        params_b=o["params"],
        gpu_memory_gib=o["gpu_memory"],
        gpus_per_node=o["gpus_per_node"],
        architecture=Architecture.MOE if o["moe"] else Architecture.DENSE,
        experts=o["experts"],
        dtype=_canonical(WeightDType, o["dtype"]),
        kv_cache_dtype=_canonical(KVCacheDType, o["kv_cache_dtype"]),
        max_model_len=o["max_model_len"],
        shape=complete_shape(o["params"], known) if o["params"] > 0 else None,
        gpus_available=o["gpus"],
        role=_canonical(Role, o["role"]),
        strategy=_canonical(ParallelismStrategy, o["strategy"]),
        tensor=o["tensor"],
        pipeline=o["pipeline"],
        data=o["data"],
        expert=o["expert"],
        gpu_memory_utilization=o["gpu_memory_utilization"],
    )


def render_table(p: Plan) -> str:
    """A readable multi-line summary with the reasons (errors go to stderr separately)."""
    r, m, lay = p.request, p.memory, p.layout
    shape = p.shape
    lines = [
        f"Plan for {r.params_b:g}B {r.dtype} {r.architecture}"
        + (f" ({r.experts} experts)" if r.experts else "")
        + f", role {r.role}, strategy {r.strategy}: {'OK' if p.ok else 'NOT POSSIBLE'}",
        f"  layout             {lay.describe()}  (tensor {lay.tensor}, pipeline {lay.pipeline}, "
        f"data {lay.data}, expert {lay.expert})",
        f"  GPUs per instance  {p.gpus_per_instance} on {p.nodes_per_instance} node(s) "
        f"of {r.gpus_per_node} × {r.gpu_memory_gib:g} GiB",
        f"  memory per GPU     weights {m.weights_gib:.1f} + overhead {m.overhead_gib:.1f} + "
        f"KV cache {m.kv_cache_gib:.1f} GiB = budget {m.budget_gib:.1f} GiB "
        f"({r.gpu_memory_utilization:g} × {r.gpu_memory_gib:g})",
        f"  KV cache           {m.kv_bytes_per_token / 1024:g} KiB/token/GPU, "
        f"{m.kv_sequence_gib:.2f} GiB per {r.max_model_len}-token sequence, "
        f"{m.max_sequences} concurrent sequences",
        f"  model shape        {shape.layers} layers, {shape.attention_heads} heads, "
        f"{shape.kv_heads} KV heads, head_dim {shape.head_dim}"
        + (" (estimated)" if p.shape_estimated else ""),
    ]
    for title, items in (("Why", p.reasons), ("Warnings", p.warnings)):
        if items:
            lines.append(f"{title}:")
            lines += [f"  - {item}" for item in items]
    return "\n".join(lines)


@click.command(name="plan", cls=PlanCommand)
@click.option(
    "-f",
    "--file",
    "pool_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Plan every role of an InferencePool manifest instead.",
)
@click.option("--params", type=float, default=None, help="Parameters in billions, e.g. 70.")
@click.option("--gpu-memory", type=float, default=80, show_default=True, help="GiB per GPU.")
@click.option("--gpus-per-node", type=int, default=8, show_default=True)
@click.option("--gpus", type=int, default=None, help="GPUs available (enables DP auto).")
@click.option("--moe", is_flag=True, help="Mixture-of-experts model (needs --experts).")
@click.option("--experts", type=int, default=None, help="Number of experts of a MoE model.")
@click.option("--dtype", type=_choice(WeightDType), default="bf16", show_default=True,
              help="Weight dtype or quantization.")  # fmt: skip
@click.option("--kv-cache-dtype", type=_choice(KVCacheDType), default="auto", show_default=True)
@click.option("--max-model-len", type=int, default=8192, show_default=True)
@click.option("--strategy", type=_choice(ParallelismStrategy), default="Auto", show_default=True)
@click.option("--role", type=_choice(Role), default="General", show_default=True)
@click.option("--tensor", type=int, default=None, help="Explicit TP size.")
@click.option("--pipeline", type=int, default=None, help="Explicit PP size.")
@click.option("--data", type=int, default=None, help="Explicit DP size.")
@click.option("--expert", type=int, default=None, help="Explicit EP size (= tensor × data).")
@click.option("--gpu-memory-utilization", type=float, default=0.9, show_default=True)
@click.option("--layers", type=int, default=None, help="Model layers (else estimated).")
@click.option("--heads", type=int, default=None, help="Attention heads (else estimated).")
@click.option("--kv-heads", type=int, default=None, help="KV heads (else estimated).")
@click.option("--head-dim", type=int, default=None, help="Head dimension (else estimated).")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table",
              show_default=True)  # fmt: skip
@click.pass_context
def plan(ctx: click.Context, /, output: str, pool_file: str | None, **options: Any) -> None:
    """Choose tensor/pipeline/data/expert parallelism for a model and explain why."""
    if pool_file is not None:
        ctx.exit(plan_pool_file(pool_file, output))
    if options["params"] is None:
        raise OneLineUsageError("give --params (billions of parameters) or -f POOL.yaml", ctx)
    result = make_plan(build_request(options))
    if output == "json":
        click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(render_table(result))
    if not result.ok:
        for error in result.errors:
            click.echo(f"Error: {error}", err=True)
        ctx.exit(EXIT_BAD_INPUT)


def plan_pool_file(path: str, output: str) -> int:
    """Plan a pool manifest exactly as the operator does; the JSON ``plan`` is what the operator
    writes to ``status.plan``. Returns the exit code."""
    manifest = yaml.safe_load(Path(path).read_text())
    problems = pool_problems(manifest) if isinstance(manifest, dict) else [f"{path}: not a mapping"]
    if problems:
        for problem in problems:
            click.echo(f"Error: {problem}", err=True)
        return EXIT_BAD_INPUT
    spec = parse_pool(manifest).spec
    planned = plan_pool(spec)
    max_gpus = planned.max_gpus(spec)
    if output == "json":
        wire = {"plan": [p.to_wire() for p in planned.status_plans()],
                "errors": list(planned.errors), "maxGPUs": max_gpus}  # fmt: skip
        click.echo(json.dumps(wire, indent=2, ensure_ascii=False))
    else:
        click.echo("\n\n".join(render_table(p) for p in planned.plans.values()))
        click.echo(f"\nGPUs at max replicas: {max_gpus}")
    for error in planned.errors:
        click.echo(f"Error: {error}", err=True)
    return EXIT_BAD_INPUT if planned.errors else 0
