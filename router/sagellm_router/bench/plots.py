"""PNG plots of summary rows (matplotlib, Agg backend; imported only when plotting)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROUTING_PANELS = (
    ("ttft_p90_ms", "TTFT p90 (ms, wall)"),
    ("output_tok_s", "output tokens/s (wall)"),
    ("prefix_hit_rate", "prefix-cache hit rate"),
    ("itl_p99_ms", "ITL p99 (ms, wall)"),
)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _err(row: Mapping[str, Any], key: str) -> tuple[float, float]:
    mid = row.get(key, math.nan)
    return mid - row.get(f"{key}_min", mid), row.get(f"{key}_max", mid) - mid


def routing_plots(rows: Sequence[Mapping[str, Any]], out: Path) -> list[Path]:
    """One figure per workload: each panel a metric against load, one line per contender."""
    plt = _pyplot()
    paths = []
    for workload in sorted({r["workload"] for r in rows}):
        fig, axes = plt.subplots(1, len(ROUTING_PANELS), figsize=(4.2 * len(ROUTING_PANELS), 3.6))
        mine = [r for r in rows if r["workload"] == workload]
        for ax, (key, label) in zip(axes, ROUTING_PANELS, strict=True):
            for contender in sorted({r["contender"] for r in mine}):
                pts = sorted(
                    (r for r in mine if r["contender"] == contender), key=lambda r: r["load"]
                )
                xs = [r["load"] * 100 for r in pts]
                ys = [r.get(key, math.nan) for r in pts]
                errs = list(zip(*(_err(r, key) for r in pts), strict=True))
                style = "-" if contender.startswith("ours") else "--"
                ax.errorbar(xs, ys, yerr=errs, fmt=style + "o", ms=3, capsize=2, label=contender)
            ax.set_xlabel("offered load (% of measured capacity)")
            ax.set_title(label, fontsize=9)
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.suptitle(f"routing - {workload} (solid: ours, dashed: vllm-router)", fontsize=10)
        fig.tight_layout()
        path = out / f"routing_{workload}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths


def bar_plots(
    rows: Sequence[Mapping[str, Any]], panels: Sequence[tuple[str, str]], title: str, path: Path,
    log: Sequence[str] = (),
) -> list[Path]:  # fmt: skip
    """Horizontal bars per contender, one panel per metric (median with min-max whiskers);
    metrics in ``log`` on a logarithmic axis."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 0.45 * len(rows) + 1.5))
    axes = axes if len(panels) > 1 else [axes]
    names = [r["contender"] for r in rows]
    for ax, (key, label) in zip(axes, panels, strict=True):
        values = [r.get(key, math.nan) for r in rows]
        errs = list(zip(*(_err(r, key) for r in rows), strict=True))
        colors = ["tab:blue" if n.startswith("ours") else "tab:orange" if n.startswith("peer")
                  else "tab:gray" for n in names]  # fmt: skip
        ax.barh(names, values, xerr=errs, color=colors, capsize=2)
        if key in log:
            _log_axis(ax)
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return [path]


def _log_axis(ax: Any) -> None:
    """A log x axis labelled 100, 200, 500, 1000, ... in plain numbers (matplotlib's default
    labels every minor tick on a short range, and they overlap)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


PD_PANELS = (
    ("output_tok_s", "output tokens/s (wall)"),
    ("ttft_p50_ms", "TTFT p50 (ms, wall)"),
    ("ttft_p99_ms", "TTFT p99 (ms, wall)"),
    ("itl_p99_ms", "ITL p99 (ms, wall)"),
)


def pd_plots(rows: Sequence[Mapping[str, Any]], out: Path) -> list[Path]:
    """Grouped bars: one group per (workload, load), one bar per layout, one panel per metric."""
    plt = _pyplot()
    groups = sorted({(r["workload"], r["load"]) for r in rows})
    names = sorted({r["contender"] for r in rows})
    width = 0.8 / max(1, len(names))
    fig, axes = plt.subplots(1, len(PD_PANELS), figsize=(4.2 * len(PD_PANELS), 3.8))
    for ax, (key, label) in zip(axes, PD_PANELS, strict=True):
        for i, name in enumerate(names):
            pts = [next((r for r in rows if (r["workload"], r["load"]) == g
                         and r["contender"] == name), {}) for g in groups]  # fmt: skip
            xs = [j + i * width for j in range(len(groups))]
            ax.bar(xs, [p.get(key, math.nan) for p in pts], width, label=name.split("/")[-1])
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(groups))])
        ax.set_xticklabels([f"{w}\n{load:.0%}" for w, load in groups], fontsize=7)
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=7)
    fig.suptitle("pd - General vs Prefill/Decode on 4 simulated GPUs (load = % of General "
                 "capacity)", fontsize=10)  # fmt: skip
    fig.tight_layout()
    path = out / "pd.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return [path]


REPLICA_PANELS = (
    ("prefix_hit_rate", "prefix-cache hit rate"),
    ("ttft_p90_ms", "TTFT p90 (ms, wall)"),
)


def replica_plots(rows: Sequence[Mapping[str, Any]], out: Path) -> list[Path]:
    """Per (workload, load) with ``<strategy>-xN`` rows: each such strategy's metrics with one
    router and with N replicas, side by side."""
    plt = _pyplot()
    paths = []
    for workload, load in dict.fromkeys((r["workload"], r["load"]) for r in rows):
        mine = {r["contender"]: r for r in rows if (r["workload"], r["load"]) == (workload, load)}
        pairs = [(name, name.rsplit("-x", 1)[0]) for name in mine if "-x" in name]
        pairs = [(n, one) for n, one in pairs if one in mine]
        if not pairs:
            continue
        fig, axes = plt.subplots(1, len(REPLICA_PANELS), figsize=(5 * len(REPLICA_PANELS), 3.4))
        for ax, (key, label) in zip(axes, REPLICA_PANELS, strict=True):
            xs = range(len(pairs))
            for offset, pick, tag in ((-0.2, 1, "1 router"), (0.2, 0, "replicas")):
                sel = [mine[p[pick]] for p in pairs]
                errs = list(zip(*(_err(r, key) for r in sel), strict=True))
                ax.bar([x + offset for x in xs], [r.get(key, math.nan) for r in sel], 0.4,
                       yerr=errs, capsize=2, label=tag)  # fmt: skip
            ax.set_xticks(list(xs))
            ax.set_xticklabels([one.split("/")[-1] for _, one in pairs], fontsize=7)
            ax.set_title(label, fontsize=9)
            ax.grid(alpha=0.3, axis="y")
        axes[0].legend(fontsize=7)
        fig.suptitle(f"routing - {workload} at {load:.0%}: one router vs replicas behind a "
                     "round-robin client", fontsize=10)  # fmt: skip
        fig.tight_layout()
        path = out / f"routing_{workload}_{round(load * 100)}_replicas.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths
