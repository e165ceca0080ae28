"""Results on disk and on screen: JSON, CSV, summary rows with ratios, and the stdout table.

Summary rows group runs by the scenario's keys (e.g. workload, load, contender) and give every
metric's median with min and max over repeats. Each ``ours`` row also gets ratios against the
best ``peer`` row of its group: ``<metric>_vs_best_peer`` = ours / best peer, where "best" is the
highest value for throughput-like metrics and the lowest for latencies.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sagellm_router.bench import stats

HIGHER_IS_BETTER = ("output_tok_s", "req_s", "rps", "prefix_hit_rate", "stream_tok_s")


def machine() -> dict[str, Any]:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": cpus, "processor": platform.processor() or platform.machine()}  # fmt: skip


def summarize(
    runs: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    ratio_metrics: Sequence[str],
    higher_is_better: Sequence[str] = HIGHER_IS_BETTER,
) -> list[dict[str, Any]]:
    """One row per group of ``keys``: medians (and min/max) of numeric fields, plus ratios."""
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for r in runs:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    rows = []
    for key, members in groups.items():
        numeric = [{k: float(v) for k, v in m.items() if _is_metric(k, v, keys)} for m in members]
        row: dict[str, Any] = dict(zip(keys, key, strict=True))
        row["kind"] = members[0].get("kind", "")
        for metric, agg in stats.aggregate(numeric).items():
            row[metric] = agg["median"]
            row[f"{metric}_min"], row[f"{metric}_max"] = agg["min"], agg["max"]
        rows.append(row)
    group_keys = [k for k in keys if k != "contender"]
    _add_ratios(rows, group_keys, ratio_metrics, higher_is_better)
    return _ordered(rows, runs, group_keys)


def _ordered(
    rows: list[dict[str, Any]], runs: Sequence[Mapping[str, Any]], group_keys: Sequence[str]
) -> list[dict[str, Any]]:
    """Groups in the order they were first run; contenders in their first-round order (runs
    alternate the contender order between rounds, which would otherwise show in the table)."""
    first: dict[Any, int] = {}
    for r in runs:
        first.setdefault(tuple(r[k] for k in group_keys), len(first))
    rank = {name: i for i, name in enumerate(dict.fromkeys(r.get("contender") for r in runs))}
    return sorted(rows, key=lambda r: (first[tuple(r[k] for k in group_keys)],
                                       rank.get(r.get("contender"), 0)))  # fmt: skip


def _is_metric(key: str, value: Any, keys: Sequence[str]) -> bool:
    return key not in keys and key != "repeat" and isinstance(value, int | float)


def _add_ratios(
    rows: list[dict[str, Any]],
    group_keys: Sequence[str],
    metrics: Sequence[str],
    higher_is_better: Sequence[str],
) -> None:
    by_group: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        by_group.setdefault(tuple(row[k] for k in group_keys), []).append(row)
    for members in by_group.values():
        peers = [r for r in members if r["kind"] == "peer"]
        for metric in metrics:
            values = [r[metric] for r in peers if metric in r and not math.isnan(r[metric])]
            if not values:
                continue
            best = max(values) if metric in higher_is_better else min(values)
            for r in members:
                if r["kind"] == "ours" and metric in r:
                    r[f"{metric}_vs_best_peer"] = stats.ratio(r[metric], best)


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_results(
    out: Path, result: Mapping[str, Any], summary: Sequence[Mapping[str, Any]]
) -> list[Path]:
    """Write ``<scenario>.json``, ``<scenario>_runs.csv`` and ``<scenario>_summary.csv``."""
    name = result["scenario"]
    doc = {**result, "machine": machine(), "summary": list(summary)}
    paths = [out / f"{name}.json", out / f"{name}_runs.csv", out / f"{name}_summary.csv"]
    paths[0].write_text(json.dumps(_clean(doc), indent=1), encoding="utf-8")
    write_csv(paths[1], result["runs"])
    write_csv(paths[2], summary)
    return paths


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A plain aligned text table of ``columns`` (medians; "-" where missing)."""
    cells = [[_fmt(r.get(c, math.nan)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)
