"""Planning context: memory checks and the ordered search over candidate layouts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from sagellm_core.planner.memory import estimate
from sagellm_core.planner.types import Layout, MemoryEstimate, ModelShape, PlanRequest

MAX_PIPELINE = 64
"""Upper bound on pipeline stages the search tries (the API allows at most 64)."""


@dataclass
class Notes:
    """What the planner has to say: reasons for choices, warnings and errors."""

    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Ctx:
    """A request plus the model shape it is planned with."""

    req: PlanRequest
    shape: ModelShape

    def mem(self, layout: Layout) -> MemoryEstimate:
        return estimate(self.req, self.shape, layout)

    def fits(self, layout: Layout) -> bool:
        return self.mem(layout).fits

    def with_request(self, **changes: Any) -> Ctx:
        return replace(self, req=replace(self.req, **changes))

    def valid_tps(self) -> list[int]:
        """TP sizes allowed here: powers of two within a node that divide the attention heads."""
        tps, t = [], 1
        while t <= self.req.gpus_per_node:
            if self.shape.attention_heads % t == 0:
                tps.append(t)
            t *= 2
        return tps

    def placeable(self, layout: Layout, limit: int | None) -> bool:
        """Within the GPU limit, and spread evenly over nodes as vLLM requires."""
        if limit is not None and layout.world > limit:
            return False
        nodes = layout.nodes(self.req.gpus_per_node)
        return layout.world % nodes == 0

    def ladder(self, ep: bool, limit: int | None) -> Iterator[Layout]:
        """Layouts from smallest up: TP 1, 2, 4, … within a node; then the widest TP with
        PP = 2, 3, … stages (the docs' multi-node rule: TP = GPUs per node, PP = nodes)."""
        tps = self.valid_tps()
        for tp in tps:
            layout = Layout(tp, 1, 1, ep)
            if self.placeable(layout, limit):
                yield layout
        max_pp = min(self.shape.layers, MAX_PIPELINE)
        for pp in range(2, max_pp + 1):
            layout = Layout(tps[-1], pp, 1, ep)
            if self.placeable(layout, limit):
                yield layout

    def minimal(self, ep: bool, limit: int | None) -> Layout | None:
        """The smallest layout that fits in memory, or ``None``."""
        return next((lay for lay in self.ladder(ep, limit) if self.fits(lay)), None)

    def largest(self, ep: bool, limit: int | None) -> Layout | None:
        """The largest placeable layout (the best memory can do within the limit)."""
        layouts = list(self.ladder(ep, limit))
        return layouts[-1] if layouts else None


def memory_summary(ctx: Ctx, layout: Layout) -> str:
    """One line of per-GPU arithmetic for a layout."""
    m = ctx.mem(layout)
    return (
        f"{layout.describe()}: {m.weights_gib:.1f} GiB weights + {m.overhead_gib:.1f} GiB "
        f"overhead per GPU leave {m.kv_cache_gib:.1f} GiB of the {m.budget_gib:.1f} GiB budget "
        f"for KV ({m.max_sequences} × {ctx.req.max_model_len}-token sequences at "
        f"{m.kv_sequence_gib:.2f} GiB each)"
    )
