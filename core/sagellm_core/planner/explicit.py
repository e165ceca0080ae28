"""Explicit strategies (TP, PP, DP, EP, Hybrid): sizes must agree with the strategy; sizes left
unset are filled in by the planner within what the strategy allows."""

from __future__ import annotations

from typing import Final

from sagellm_core.api.common import ParallelismStrategy as Strategy
from sagellm_core.planner.auto import clamp_tensor, plan_auto
from sagellm_core.planner.rules import sixteen_bit_equivalent, size_table
from sagellm_core.planner.search import MAX_PIPELINE, Ctx, Notes
from sagellm_core.planner.suggest import does_not_fit, fixes
from sagellm_core.planner.types import Layout, PlanRequest

ALLOWED: Final[dict[Strategy, frozenset[str]]] = {
    Strategy.AUTO: frozenset(),
    Strategy.TP: frozenset({"tensor"}),
    Strategy.PP: frozenset({"pipeline"}),
    Strategy.DP: frozenset({"data"}),
    Strategy.EP: frozenset({"tensor", "data", "expert"}),
    Strategy.HYBRID: frozenset({"tensor", "pipeline", "data", "expert"}),
}


def agreement_errors(req: PlanRequest) -> list[str]:
    """Explicit sizes that contradict the requested strategy or the architecture."""
    s, pins = Strategy(req.strategy), req.pinned()
    if s == Strategy.AUTO and pins:
        given = ", ".join(f"{k}={v}" for k, v in pins.items())
        return [f"explicit sizes ({given}) need a strategy other than Auto: use Hybrid, "
                "or drop the sizes and let the planner choose"]  # fmt: skip
    errors = []
    for name, value in pins.items():
        if name not in ALLOWED[s] and value != 1:
            allowed = ", ".join(sorted(ALLOWED[s]))
            errors.append(
                f"strategy {s} with {name}={value}: {s} sets only {allowed}; "
                "use strategy Hybrid to combine parallelism kinds"
            )
    if not req.is_moe and (s == Strategy.EP or (req.expert or 1) > 1):
        errors.append(
            "expert parallelism needs a MoE model (architecture MoE with experts); "
            "a dense model has no experts to spread: use TP or PP instead"
        )
    return errors


def wants_ep(req: PlanRequest) -> bool:
    """EP for strategy EP, and for Hybrid on MoE unless expert is pinned to 1."""
    if req.strategy == Strategy.EP:
        return True
    return req.strategy == Strategy.HYBRID and req.is_moe and (req.expert or 2) > 1


def tensor_options(ctx: Ctx, notes: Notes) -> list[int]:
    """Pinned TP, else the size table's TP first, then larger, then smaller valid TPs."""
    req = ctx.req
    if req.tensor is not None:
        return [req.tensor]
    if "tensor" not in ALLOWED[Strategy(req.strategy)]:
        return [1]
    row = size_table(sixteen_bit_equivalent(req.params_b, req.dtype))
    start = clamp_tensor(ctx, row.tensor, "size-table", notes)
    valid = ctx.valid_tps()
    return [t for t in valid if t >= start] + [t for t in reversed(valid) if t < start]


def pipeline_options(ctx: Ctx) -> list[int]:
    req = ctx.req
    if req.pipeline is not None:
        return [req.pipeline]
    if "pipeline" not in ALLOWED[Strategy(req.strategy)]:
        return [1]
    return list(range(1, min(ctx.shape.layers, MAX_PIPELINE) + 1))


def fill_data(ctx: Ctx, shard: int, ep: bool, notes: Notes) -> int:
    """Pinned DP; else derived from a pinned expert size; else the GPUs left; else 1."""
    req = ctx.req
    if req.data is not None:
        return req.data
    if ep and req.expert is not None:
        data = max(1, req.expert // shard)
        notes.reasons.append(f"DP{data} from expert={req.expert} over TP{req.tensor or shard}")
        return data
    if "data" in ALLOWED[Strategy(req.strategy)] and req.gpus_available is not None:
        data = max(1, req.gpus_available // shard)
        notes.reasons.append(f"DP auto: {req.gpus_available} GPUs // {shard} = DP{data}")
        return data
    return 1


def plan_explicit(ctx: Ctx, notes: Notes) -> Layout | None:
    """Search the sizes the strategy leaves open for the first layout that fits."""
    req = ctx.req
    if req.strategy == Strategy.HYBRID and not req.pinned():
        notes.reasons.append("Hybrid without explicit sizes: planned as Auto")
        return plan_auto(ctx, notes)
    ep, limit = wants_ep(req), req.gpus_available
    tps = tensor_options(ctx, notes)
    candidates = [Layout(tp, pp, req.data or 1, ep) for pp in pipeline_options(ctx) for tp in tps]
    chosen: Layout | None = candidates[0]
    if len(candidates) > 1:
        placeable = [lay for lay in candidates if ctx.placeable(lay, limit)]
        chosen = next((lay for lay in placeable if ctx.fits(lay)), None)
        if chosen is None:
            largest = max(placeable, key=lambda lay: lay.shard, default=None)
            notes.errors.append(no_fit_message(ctx, ep, largest))
            return None
    assert chosen is not None
    notes.reasons.append(f"strategy {req.strategy}: {chosen.describe()}")
    data = fill_data(ctx, chosen.shard, ep, notes)
    return Layout(chosen.tensor, chosen.pipeline, data, ep)


def no_fit_message(ctx: Ctx, ep: bool, tried: Layout | None) -> str:
    s, limit = ctx.req.strategy, ctx.req.gpus_available
    if tried is None:
        return f"strategy {s}: no layout it allows fits on {limit} GPUs. " + fixes(
            ctx, None, ep, limit
        )
    return f"strategy {s}: no layout it allows fits; " + does_not_fit(ctx, tried, ep, limit)
