"""Checks on the request (before planning) and on the final layout (after planning)."""

from __future__ import annotations

import math

from sagellm_core.planner.search import Ctx
from sagellm_core.planner.suggest import does_not_fit
from sagellm_core.planner.types import Layout, ModelShape, PlanRequest


def _positive(name: str, value: float | None, fix: str) -> list[str]:
    if value is None or (math.isfinite(value) and value > 0):
        return []
    return [f"{name} must be a positive number, got {value!r}: {fix}"]


def request_errors(req: PlanRequest) -> list[str]:
    """Numbers that make no sense, and architecture facts that contradict each other."""
    errors = [
        *_positive("params", req.params_b, "give the parameter count in billions, e.g. 70"),
        *_positive("gpu memory", req.gpu_memory_gib, "give GiB per GPU, e.g. 80"),
        *_positive("gpus per node", req.gpus_per_node, "e.g. 8"),
        *_positive("gpus", req.gpus_available, "give the GPUs available, or leave it unset"),
        *_positive("max model len", req.max_model_len, "e.g. 8192"),
    ]
    for name, value in req.pinned().items():
        errors += _positive(name, value, "explicit sizes are 1 or more")
    if not 0 < req.gpu_memory_utilization <= 1:
        errors.append(
            f"gpu memory utilization must be in (0, 1], got {req.gpu_memory_utilization!r}: "
            "the default is 0.9"
        )
    if req.is_moe and (req.experts is None or req.experts < 2):
        errors.append(f"a MoE model needs experts ≥ 2, got {req.experts!r}: e.g. --experts 64")
    if not req.is_moe and req.experts is not None:
        errors.append("experts apply only to MoE models: set architecture MoE or drop experts")
    if req.shape is not None:
        errors += shape_errors(req.shape)
    return errors


def shape_errors(shape: ModelShape) -> list[str]:
    errors: list[str] = []
    for name in ("layers", "attention_heads", "kv_heads", "head_dim"):
        errors += _positive(name, getattr(shape, name), "take it from the model's config.json")
    if not errors and shape.attention_heads % shape.kv_heads != 0:
        errors.append(
            f"attention heads ({shape.attention_heads}) must be a multiple of kv heads "
            f"({shape.kv_heads}): check the model's config.json"
        )
    return errors


def tensor_errors(ctx: Ctx, tp: int) -> list[str]:
    errors = []
    if tp & (tp - 1):
        errors.append(f"tensor={tp} is not a power of two: use 1, 2, 4 or 8")
    if tp > ctx.req.gpus_per_node:
        errors.append(
            f"tensor={tp} exceeds {ctx.req.gpus_per_node} GPUs per node: TP must stay within a "
            "node; use pipeline stages across nodes (e.g. Hybrid with pipeline=nodes)"
        )
    heads = ctx.shape.attention_heads
    if heads % tp:
        valid = ", ".join(str(t) for t in ctx.valid_tps())
        errors.append(
            f"tensor={tp} does not divide the {heads} attention heads: use one of {valid}"
        )
    return errors


def layout_errors(ctx: Ctx, lay: Layout) -> list[str]:
    """Hard constraints on a chosen layout, each naming the problem and a fix."""
    req, errors = ctx.req, tensor_errors(ctx, lay.tensor)
    if lay.pipeline > ctx.shape.layers:
        errors.append(f"pipeline={lay.pipeline} exceeds the model's {ctx.shape.layers} layers")
    if req.gpus_available is not None and lay.world > req.gpus_available:
        errors.append(
            f"{lay.describe()} needs {lay.world} GPUs but only {req.gpus_available} are "
            "available: lower the sizes or add GPUs"
        )
    nodes = lay.nodes(req.gpus_per_node)
    if lay.world % nodes:
        errors.append(
            f"{lay.describe()} uses {lay.world} GPUs, which do not split evenly over {nodes} "
            f"nodes of {req.gpus_per_node}: vLLM needs TP×PP×DP divisible by the node count"
        )
    if lay.expert_parallel and req.experts is not None and lay.expert > req.experts:
        errors.append(
            f"expert parallel size {lay.expert} exceeds the {req.experts} experts: "
            "some ranks would hold no expert; lower TP×DP"
        )
    if lay.expert_parallel and req.expert is not None and req.expert != lay.expert:
        errors.append(
            f"expert={req.expert} must equal tensor×data = {lay.expert} "
            "(vLLM's expert-parallel group spans the TP×DP ranks)"
        )
    if not errors and not ctx.fits(lay):
        errors.append(does_not_fit(ctx, lay, lay.expert_parallel, req.gpus_available))
    return errors
