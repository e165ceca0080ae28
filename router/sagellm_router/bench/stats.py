"""Pure statistics: per-run metrics from load-generator records, and medians over repeats."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in [0, 100]) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def run_metrics(result: Mapping[str, Any], time_scale: float = 1.0) -> dict[str, float]:
    """Metrics of one load-generator run.

    Latencies are milliseconds of wall-clock time; ``output_tok_s`` is output tokens of the
    successful requests divided by the time from the first request sent to the last reply done.
    ``time_scale`` (the simulators' ``--sim-time-scale``) is not applied here; see ``simulated``.
    """
    fields = result["fields"]
    rows = [dict(zip(fields, r, strict=True)) for r in result["records"]]
    ok = [r for r in rows if r["error"] is None and r["e2e"] is not None]
    ttft = [r["ttft"] * 1000 for r in ok]
    e2e = [r["e2e"] * 1000 for r in ok]
    itl = [x * 1000 for x in result["itl"]]
    first = min((r["start"] for r in rows), default=0.0)
    last = max((r["start"] + r["e2e"] for r in ok), default=first)
    span = max(last - first, 1e-9)
    out_tokens = sum(r["out_tokens"] for r in ok)
    return {
        "requests": float(len(rows)),
        "errors": float(len(rows) - len(ok)),
        "ttft_p50_ms": percentile(ttft, 50),
        "ttft_p90_ms": percentile(ttft, 90),
        "ttft_p99_ms": percentile(ttft, 99),
        "itl_p50_ms": percentile(itl, 50),
        "itl_p99_ms": percentile(itl, 99),
        "e2e_p50_ms": percentile(e2e, 50),
        "e2e_p99_ms": percentile(e2e, 99),
        "output_tok_s": out_tokens / span,
        "req_s": len(ok) / span,
    }


def saturated_rate(result: Mapping[str, Any], duration_s: float) -> float:
    """Completions per second of a closed-loop run while it was saturated.

    Counted over the second half of the ``duration_s`` the workers kept starting requests: by
    then the first wave has finished and every worker always has one request in flight; after
    ``duration_s`` the loop drains. The whole span, ramp and drain included, underestimates a
    fleet whose requests take seconds by a third or more in a few-second probe. Falls back to
    the whole span when fewer than two requests finish in the window.
    """
    fields = result["fields"]
    half = duration_s / 2
    inside = sum(
        1
        for r in (dict(zip(fields, raw, strict=True)) for raw in result["records"])
        if r["error"] is None
        and r["e2e"] is not None
        and half < r["start"] + r["e2e"] <= duration_s
    )
    if inside < 2:
        return run_metrics(result)["req_s"]
    return inside / half


def class_attainment(result: Mapping[str, Any], slo_ms: Mapping[str, float]) -> dict[str, float]:
    """Per traffic class: fraction of its requests that succeeded within their TTFT objective."""
    fields = result["fields"]
    by_class: dict[str, list[bool]] = {}
    for raw in result["records"]:
        r = dict(zip(fields, raw, strict=True))
        limit = slo_ms.get(r["klass"])
        if limit is None:
            continue
        met = r["error"] is None and r["ttft"] is not None and r["ttft"] * 1000 <= limit
        by_class.setdefault(r["klass"], []).append(met)
    return {f"slo_{k}": sum(v) / len(v) for k, v in sorted(by_class.items())}


def class_metrics(
    result: Mapping[str, Any], slo_ms: Mapping[str, float | None]
) -> dict[str, float]:
    """Per traffic class ``k`` of ``slo_ms`` (wall ms; None = no objective): ``requests_k``,
    ``ttft_p50_k_ms``/``ttft_p99_k_ms`` of its successful requests and, with an objective,
    ``slo_k`` = share of all its requests that succeeded with TTFT within it. Plus
    ``rejected_429``/``rejected_503``: requests answered with those statuses."""
    fields = result["fields"]
    rows = [dict(zip(fields, r, strict=True)) for r in result["records"]]
    out: dict[str, float] = {
        f"rejected_{code}": float(sum(r["error"] == f"HTTP {code}" for r in rows))
        for code in (429, 503)
    }
    for klass, limit in slo_ms.items():
        mine = [r for r in rows if r["klass"] == klass]
        ttft = [r["ttft"] * 1000 for r in mine if r["error"] is None and r["ttft"] is not None]
        out[f"requests_{klass}"] = float(len(mine))
        out[f"ttft_p50_{klass}_ms"] = percentile(ttft, 50)
        out[f"ttft_p99_{klass}_ms"] = percentile(ttft, 99)
        if limit is not None:
            met = sum(t <= limit for t in ttft)
            out[f"slo_{klass}"] = met / len(mine) if mine else math.nan
    return out


def simulated(metrics: Mapping[str, float], time_scale: float) -> dict[str, float]:
    """Convert wall-clock metrics to simulated-GPU time (latency / scale, rates x scale)."""
    out = {}
    for key, value in metrics.items():
        if key.endswith("_ms"):
            out[key] = value / time_scale
        elif key.endswith("_s") and key != "requests":
            out[key] = value * time_scale
        else:
            out[key] = value
    return out


def aggregate(runs: Iterable[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Median, min and max of every metric over repeats (NaNs ignored)."""
    runs = list(runs)
    keys = sorted({k for r in runs for k in r})
    out: dict[str, dict[str, float]] = {}
    for key in keys:
        values = [r[key] for r in runs if key in r and not math.isnan(r[key])]
        if values:
            out[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
        else:
            out[key] = {"median": math.nan, "min": math.nan, "max": math.nan}
    return out


def ratio(ours: float, peer: float) -> float:
    """ours / peer, NaN when undefined."""
    if math.isnan(ours) or math.isnan(peer) or peer == 0:
        return math.nan
    return ours / peer
