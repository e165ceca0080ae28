"""``plan()``: the planner's entry point."""

from __future__ import annotations

from sagellm_core.api.common import ParallelismStrategy as Strategy
from sagellm_core.api.common import Role
from sagellm_core.planner.auto import plan_auto
from sagellm_core.planner.explicit import agreement_errors, plan_explicit
from sagellm_core.planner.memory import estimate_shape
from sagellm_core.planner.search import Ctx, Notes, memory_summary
from sagellm_core.planner.types import Layout, ModelShape, Plan, PlanRequest
from sagellm_core.planner.validate import layout_errors, request_errors

LOW_DECODE_CONCURRENCY = 4
"""Decode instances below this many concurrent full-length sequences get a warning."""


def resolve_shape(req: PlanRequest, notes: Notes) -> tuple[ModelShape, bool]:
    if req.shape is not None:
        return req.shape, False
    shape, example = estimate_shape(req.params_b)
    notes.reasons.append(
        f"model shape estimated from {req.params_b:g}B parameters as {example}-like: "
        f"{shape.layers} layers, {shape.attention_heads} heads, {shape.kv_heads} KV heads, "
        f"head_dim {shape.head_dim} (give the real shape for exact KV sizing)"
    )
    return shape, True


def plan(req: PlanRequest) -> Plan:
    """Choose TP/PP/DP/EP for one instance of ``req``'s model and explain the choice."""
    notes = Notes()
    errors = request_errors(req)
    shape, estimated = resolve_shape(req, notes) if not errors else (ModelShape(1, 1, 1, 1), True)
    ctx = Ctx(req, shape)
    if errors:
        return _finish(ctx, Layout(1), estimated, Notes(errors=errors))
    errors = agreement_errors(req)
    if errors:
        pins = req.pinned()
        fallback = Layout(pins.get("tensor", 1), pins.get("pipeline", 1), pins.get("data", 1))
        notes.errors += errors
        return _finish(ctx, fallback, estimated, notes)
    layout = plan_auto(ctx, notes) if req.strategy == Strategy.AUTO else plan_explicit(ctx, notes)
    if layout is None:
        return _finish(
            ctx, ctx.largest(req.is_moe, req.gpus_available) or Layout(1), estimated, notes
        )
    notes.errors += layout_errors(ctx, layout)
    if not notes.errors:
        notes.reasons.append("memory: " + memory_summary(ctx, layout))
        notes.warnings += _warnings(ctx, layout)
    return _finish(ctx, layout, estimated, notes)


def _warnings(ctx: Ctx, lay: Layout) -> list[str]:
    req, out = ctx.req, []
    m = ctx.mem(lay)
    if req.role == Role.DECODE and m.max_sequences < LOW_DECODE_CONCURRENCY:
        out.append(
            f"decode instance fits only {m.max_sequences} concurrent {req.max_model_len}-token "
            "sequences: raise TP or use an fp8 KV cache for more decode batch"
        )
    if req.gpus_available is not None and lay.world < req.gpus_available:
        out.append(
            f"{req.gpus_available - lay.world} of {req.gpus_available} GPUs stay idle in one "
            "instance: use them for more replicas"
        )
    if lay.data > 1 and not req.is_moe:
        out.append(
            f"dense model with DP{lay.data}: vLLM runs the ranks as independent engines behind "
            "one API server; pool replicas are the alternative"
        )
    if lay.expert_parallel and req.experts is not None and req.experts % lay.expert:
        out.append(f"{req.experts} experts do not split evenly over EP{lay.expert}")
    return out


def _finish(ctx: Ctx, layout: Layout, estimated: bool, notes: Notes) -> Plan:
    return Plan(
        request=ctx.req,
        shape=ctx.shape,
        shape_estimated=estimated,
        layout=layout,
        memory=ctx.mem(layout),
        reasons=tuple(notes.reasons),
        warnings=tuple(notes.warnings),
        errors=tuple(notes.errors),
    )
