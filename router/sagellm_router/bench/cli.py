"""``sagellm bench SCENARIO``: run one benchmark scenario, write results and plots, print a table.

Scenarios: routing, overhead, slo, pd, operator, autoscale (see docs/benchmarks.md). Output in
``--out``: ``<scenario>.json`` (settings, machine, raw runs, summary), ``<scenario>_runs.csv``,
``<scenario>_summary.csv`` and ``*.png``; process logs go to ``--out``/logs.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import click

from sagellm_router.bench import report
from sagellm_router.bench.fleet import BenchError
from sagellm_router.bench.options import BenchOptions, Scenario
from sagellm_router.bench.scenarios.autoscale import AutoscaleScenario
from sagellm_router.bench.scenarios.availability import OperatorScenario
from sagellm_router.bench.scenarios.overhead import OverheadScenario
from sagellm_router.bench.scenarios.pd import PdScenario
from sagellm_router.bench.scenarios.routing import PEERS, RoutingScenario, our_strategies
from sagellm_router.bench.scenarios.slo import SloScenario
from sagellm_router.bench.workloads import WORKLOADS


def scenarios() -> dict[str, Scenario]:
    found: list[Scenario] = [RoutingScenario(), OverheadScenario(), SloScenario(), PdScenario(),
                             OperatorScenario(), AutoscaleScenario()]  # fmt: skip
    return {s.name: s for s in found}


@click.command("bench")
@click.argument("scenario", type=click.Choice(list(scenarios())))
@click.option("--duration", type=float, default=None,
              help="Seconds of traffic per run (default: the scenario's).")  # fmt: skip
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("bench-results"), show_default=True)  # fmt: skip
@click.option("--quick", is_flag=True, help="A small version that runs in 1-2 minutes.")
@click.option("--repeats", type=click.IntRange(1, 20), default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--engines", type=click.IntRange(1, 64), default=None,
              help="Simulated engines in the fleet (default: the scenario's).")  # fmt: skip
@click.option("--workload", "workloads", multiple=True, type=click.Choice(sorted(WORKLOADS)),
              help="routing: run only this workload (repeatable).")  # fmt: skip
@click.option("--load", "loads", multiple=True,
              type=click.FloatRange(0, 2, min_open=True),
              help="routing: run only this load level, a fraction of the measured capacity "
                   "(repeatable).")  # fmt: skip
@click.option("--replicas", type=click.IntRange(1, 4), default=1, show_default=True,
              help="routing: also run the prefix_aware and kv_aware contenders as N router "
                   "replicas behind a round-robin client.")  # fmt: skip
@click.option("--strategy", "strategies", multiple=True, type=click.Choice(our_strategies()),
              help="routing: run only these of our strategies (repeatable).")  # fmt: skip
@click.option("--peer", "peers", multiple=True, type=click.Choice(PEERS),
              help="routing: run only these vllm-router policies (repeatable; default: all "
                   "that are installed).")  # fmt: skip
def bench(
    scenario: str, duration: float | None, out_dir: Path, quick: bool, repeats: int, seed: int,
    engines: int | None, workloads: tuple[str, ...], loads: tuple[float, ...], replicas: int,
    strategies: tuple[str, ...], peers: tuple[str, ...],
) -> None:  # fmt: skip
    """Benchmark our router side by side with vllm-router on a simulated fleet."""
    logging.basicConfig(level=logging.WARNING)
    if duration is not None and duration <= 0:
        raise click.BadParameter("must be > 0", param_hint="--duration")
    if scenario != "routing" and (workloads or loads or strategies or peers or replicas != 1):
        raise click.UsageError("--workload, --load, --strategy, --peer and --replicas apply to "
                               "the routing scenario only")  # fmt: skip
    opts = BenchOptions(duration, quick, repeats, seed, engines, workloads, loads, replicas,
                        strategies, peers)  # fmt: skip
    chosen = scenarios()[scenario]
    workdir = out_dir / "logs"
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        make_bar: Any = click.progressbar  # its overloads confuse mypy
        bar = make_bar(
            length=chosen.steps(opts), label=f"bench {scenario}", show_pos=True,
            file=sys.stderr,
        )  # fmt: skip
        with bar:
            outcome = chosen.execute(opts, out_dir, workdir, lambda n: bar.update(n))
    except BenchError as exc:
        raise click.ClickException(f"{exc} (logs in {workdir})") from exc
    files = report.write_results(out_dir, outcome.result, outcome.summary)
    click.echo(report.table(outcome.summary, outcome.columns))
    for note in outcome.result.get("notes", []):
        click.echo(f"note: {note}")
    click.echo(f"{scenario}: {time.monotonic() - started:.0f} s; wrote "
               + ", ".join(str(p) for p in [*files, *outcome.plots]))  # fmt: skip
