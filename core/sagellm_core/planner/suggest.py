"""Error messages for plans that do not fit, with concrete fixes."""

from __future__ import annotations

from sagellm_core.planner.memory import BYTES_PER_PARAM, max_fitting_len, weights_gib
from sagellm_core.planner.search import Ctx
from sagellm_core.planner.types import KVCacheDType, Layout, WeightDType

MIN_USEFUL_LEN = 256
"""Shorter max model lengths are not suggested: they are rarely useful."""


def fixes(ctx: Ctx, layout: Layout | None, ep: bool, limit: int | None) -> str:
    """Concrete ways out: more GPUs, quantization, an fp8 KV cache, a shorter max model len."""
    req = ctx.req
    out: list[str] = []
    need = ctx.minimal(ep, None)
    if need is not None and (limit is None or need.world > limit):
        out.append(f"use {need.world} GPUs of {req.gpu_memory_gib:g} GiB as {need.describe()}")
    quantize = _quantize_fix(ctx, ep, limit, need)
    if quantize is not None:
        out.append(quantize)
    if layout is not None:
        if req.kv_cache_dtype == KVCacheDType.AUTO:
            fp8 = ctx.with_request(kv_cache_dtype=KVCacheDType.FP8)
            if fp8.fits(layout):
                out.append(f"use an fp8 KV cache (fits as {layout.describe()})")
        longest = max_fitting_len(req, ctx.shape, layout)
        if MIN_USEFUL_LEN <= longest < req.max_model_len:
            out.append(f"lower max model len to {longest} or less (fits as {layout.describe()})")
    if not out:
        out.append("use GPUs with more memory")
    return "Fix: " + "; or ".join(out) + "."


def _quantize_fix(ctx: Ctx, ep: bool, limit: int | None, need: Layout | None) -> str | None:
    """Quantization that fits within the GPU limit, else in the fewest GPUs, when it needs
    fewer GPUs than the current dtype does."""
    best: tuple[int, str] | None = None
    for dtype in (WeightDType.FP8, WeightDType.INT4):
        if BYTES_PER_PARAM[dtype] >= BYTES_PER_PARAM[ctx.req.dtype]:
            continue
        quant = ctx.with_request(dtype=dtype)
        within = quant.minimal(ep, limit)
        if within is not None and (need is None or within.world < need.world):
            return f"quantize to {dtype} (fits as {within.describe()})"
        anywhere = quant.minimal(ep, None)
        if anywhere is None or (need is not None and anywhere.world >= need.world):
            continue
        if best is None or anywhere.world < best[0]:
            text = f"quantize to {dtype} and use {anywhere.world} GPUs as {anywhere.describe()}"
            best = (anywhere.world, text)
    return best[1] if best else None


def does_not_fit(ctx: Ctx, layout: Layout, ep: bool, limit: int | None) -> str:
    """Why ``layout`` does not fit, with fixes."""
    req, m = ctx.req, ctx.mem(layout)
    need = m.weights_gib + m.overhead_gib + m.kv_sequence_gib
    return (
        f"{layout.describe()} does not fit: per GPU {m.weights_gib:.1f} GiB weights + "
        f"{m.overhead_gib:.1f} GiB overhead + {m.kv_sequence_gib:.2f} GiB KV for one "
        f"{req.max_model_len}-token sequence = {need:.1f} GiB > budget {m.budget_gib:.1f} GiB "
        f"({req.gpu_memory_utilization:g} × {req.gpu_memory_gib:g} GiB). "
        + fixes(ctx, layout, ep, limit)
    )


def nothing_fits(ctx: Ctx, ep: bool, limit: int | None) -> str:
    """No layout within ``limit`` GPUs fits: name the model, the GPUs and the fixes."""
    req = ctx.req
    total = weights_gib(req.params_b, req.dtype)
    where = f"{limit} GPU(s)" if limit is not None else "any layout"
    best = ctx.largest(ep, limit)
    head = (
        f"{req.params_b:g}B {req.dtype} {req.architecture} model ({total:.1f} GiB of weights) "
        f"does not fit on {where} × {req.gpu_memory_gib:g} GiB"
    )
    if best is None:
        return f"{head}: no valid layout exists. " + fixes(ctx, None, ep, limit)
    m = ctx.mem(best)
    return (
        f"{head}: even {best.describe()} needs {m.weights_gib + m.overhead_gib:.1f} GiB/GPU "
        f"for weights and overhead plus {m.kv_sequence_gib:.2f} GiB KV per sequence, against "
        f"a budget of {m.budget_gib:.1f} GiB. " + fixes(ctx, best, ep, limit)
    )
