"""``strategy: Auto``: start from the seed rules, let memory arithmetic decide disagreements."""

from __future__ import annotations

from sagellm_core.planner.rules import Rule, gpu_count_rule, sixteen_bit_equivalent, size_table
from sagellm_core.planner.search import Ctx, Notes
from sagellm_core.planner.suggest import nothing_fits
from sagellm_core.planner.types import Layout


def clamp_tensor(ctx: Ctx, tp: int, source: str, notes: Notes) -> int:
    """The largest valid TP not above ``tp`` (within a node, dividing the attention heads)."""
    valid = [t for t in ctx.valid_tps() if t <= tp]
    chosen = valid[-1]
    if chosen != tp:
        notes.reasons.append(
            f"{source} TP{tp} is not usable (TP must be ≤ {ctx.req.gpus_per_node} GPUs per node "
            f"and divide {ctx.shape.attention_heads} attention heads): starting from TP{chosen}"
        )
    return chosen


def table_layout(ctx: Ctx, ep: bool, notes: Notes) -> Layout | None:
    """The size-table layout, fitted: extra PP dropped if not needed, raised if it does not fit."""
    req = ctx.req
    eq = sixteen_bit_equivalent(req.params_b, req.dtype)
    row = size_table(eq)
    notes.reasons.append(f"size table: {eq:g}B at 16 bits is in row {row.label}")
    start = Layout(clamp_tensor(ctx, row.tensor, "size-table", notes), row.pipeline, 1, ep)
    if ctx.fits(start):
        pp = next(
            p for p in range(1, start.pipeline + 1) if ctx.fits(Layout(start.tensor, p, 1, ep))
        )
        chosen = Layout(start.tensor, pp, 1, ep)
        if pp < start.pipeline:
            notes.reasons.append(
                f"memory: {chosen.describe()} already fits, so PP{pp} rather than the table's "
                f"PP{start.pipeline} (extra pipeline stages add latency, not needed capacity)"
            )
        return chosen
    for cand in ctx.ladder(ep, None):
        if cand.shard >= start.shard and cand != start and ctx.fits(cand):
            m = ctx.mem(start)
            notes.reasons.append(
                f"memory overrides the size table: {start.describe()} needs "
                f"{m.weights_gib:.1f} GiB weights + {m.overhead_gib:.1f} GiB overhead per GPU, "
                f"leaving {m.kv_cache_gib:.1f} GiB < {m.kv_sequence_gib:.2f} GiB for one sequence; "
                f"raised to {cand.describe()}"
            )
            return cand
    return None


def count_layout(ctx: Ctx, ep: bool, gpus: int, notes: Notes) -> Layout | None:
    """The GPU-count rule's layout if it is valid and fits, else ``None`` (with the reason)."""
    rule: Rule = gpu_count_rule(gpus)
    layout = Layout(rule.tensor, rule.pipeline, rule.data, ep)
    notes.reasons.append(f"GPU-count rule: {rule.label} → {rule.describe()}")
    if rule.tensor not in ctx.valid_tps():
        notes.reasons.append(
            f"GPU-count rule TP{rule.tensor} is not usable: TP must be ≤ "
            f"{ctx.req.gpus_per_node} GPUs per node and divide "
            f"{ctx.shape.attention_heads} attention heads"
        )
        return None
    if not ctx.placeable(layout, gpus) or not ctx.fits(Layout(rule.tensor, rule.pipeline, 1, ep)):
        m = ctx.mem(Layout(rule.tensor, rule.pipeline, 1, ep))
        notes.reasons.append(
            f"GPU-count rule layout {rule.describe()} does not fit: {m.weights_gib:.1f} GiB "
            f"weights + {m.overhead_gib:.1f} GiB overhead per GPU of a {m.budget_gib:.1f} GiB "
            f"budget leave {m.kv_cache_gib:.1f} GiB < {m.kv_sequence_gib:.2f} GiB for one sequence"
        )
        return None
    return layout


def choose(table: Layout | None, count: Layout | None, gpus: int, notes: Notes) -> Layout | None:
    """Pick between the two rule sets; memory already vetted both."""
    options: list[Layout] = []
    if table is not None:
        if table.shard <= gpus:
            options.append(table)
        else:
            notes.reasons.append(
                f"size-table layout {table.describe()} needs {table.shard} GPUs; "
                f"only {gpus} available"
            )
    if count is not None:
        options.append(count)
    if not options:
        return None
    best = min(options, key=lambda lay: (lay.shard, lay.pipeline))
    if table in options and count is not None and table is not None:
        if (table.tensor, table.pipeline) == (count.tensor, count.pipeline):
            notes.reasons.append(f"size table and GPU-count rule agree on {best.describe()}")
        else:
            notes.reasons.append(
                f"size table ({table.describe()}) and GPU-count rule ({count.describe()}) "
                f"disagree and both fit: memory decides for the smaller {best.describe()}, "
                "leaving more GPUs for data-parallel replicas"
            )
    return best


def plan_auto(ctx: Ctx, notes: Notes) -> Layout | None:
    """Auto layout for one instance; with ``gpus_available``, DP uses the remaining GPUs."""
    req, ep = ctx.req, ctx.req.is_moe
    if ep:
        notes.reasons.append("MoE model → EP+TP (seed table): experts spread over the TP×DP ranks")
    table = table_layout(ctx, ep, notes)
    gpus = req.gpus_available
    if gpus is None:
        if table is None:
            notes.errors.append(nothing_fits(ctx, ep, None))
            return None
        return moe_limits(ctx, table, notes)
    chosen = choose(table, count_layout(ctx, ep, gpus, notes), gpus, notes)
    if chosen is None:
        chosen = ctx.minimal(ep, gpus)
        if chosen is None:
            notes.errors.append(nothing_fits(ctx, ep, gpus))
            return None
        notes.reasons.append(f"smallest layout that fits {gpus} GPUs: {chosen.describe()}")
    data = gpus // chosen.shard
    notes.reasons.append(f"DP auto: {gpus} GPUs // {chosen.shard} per model copy = DP{data}")
    return moe_limits(ctx, Layout(chosen.tensor, chosen.pipeline, data, ep), notes)


def moe_limits(ctx: Ctx, lay: Layout, notes: Notes) -> Layout:
    """Keep the EP group (TP×DP) within the number of experts."""
    experts = ctx.req.experts
    if not lay.expert_parallel or experts is None or lay.expert <= experts:
        return lay
    if lay.tensor > experts:
        notes.reasons.append(
            f"EP off: TP{lay.tensor} already exceeds the {experts} experts, so TP shards them"
        )
        return Layout(lay.tensor, lay.pipeline, lay.data, False)
    data = experts // lay.tensor
    notes.reasons.append(
        f"DP capped at {data}: the EP group TP×DP must not exceed the {experts} experts"
    )
    return Layout(lay.tensor, lay.pipeline, data, True)
