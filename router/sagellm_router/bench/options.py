"""What every scenario gets from the command line, and what it hands back."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

Progress = Callable[[int], None]


@dataclass(frozen=True)
class BenchOptions:
    """Parsed ``sagellm bench`` options (``None`` means the scenario's default)."""

    duration: float | None = None
    quick: bool = False
    repeats: int = 1
    seed: int = 0
    engines: int | None = None
    workloads: tuple[str, ...] = ()  # routing only: run just these workloads
    loads: tuple[float, ...] = ()  # routing only: just these load levels
    replicas: int = 1  # routing only: also run REPLICATED strategies as N router replicas
    strategies: tuple[str, ...] = ()  # routing only: just these of our strategies
    peers: tuple[str, ...] = ()  # routing only: just these vllm-router policies


Cfg = TypeVar("Cfg")


def with_overrides(cfg: Cfg, opts: BenchOptions) -> Cfg:
    """``cfg`` (a scenario's frozen dataclass with ``duration_s`` and ``fleet``) with the
    command line's ``--duration`` and ``--engines``, where given."""
    if opts.duration is not None:
        cfg = replace(cfg, duration_s=opts.duration)  # type: ignore[type-var]
    if opts.engines is not None:
        fleet = replace(cfg.fleet, engines=opts.engines)  # type: ignore[attr-defined]
        cfg = replace(cfg, fleet=fleet)  # type: ignore[type-var]
    return cfg


@dataclass
class Outcome:
    """A finished scenario: raw result, summary rows, the table columns, written plot files."""

    result: Mapping[str, Any]
    summary: Sequence[Mapping[str, Any]]
    columns: Sequence[str]
    plots: list[Path] = field(default_factory=list)


class Scenario(Protocol):
    """Interface of a scenario module: how many progress steps, and how to run."""

    name: str

    def steps(self, opts: BenchOptions) -> int: ...

    def execute(
        self, opts: BenchOptions, out: Path, workdir: Path, progress: Progress
    ) -> Outcome: ...
