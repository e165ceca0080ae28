"""Phase gauges' counting and the per-key coalescing of pool reconciles."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sagellm_operator.reconcile.coalesce import Coalescer
from sagellm_operator.reconcile.resync import INSTANCE_PHASES, POOL_PHASES, phase_counts


def _objs(*phases: str | None) -> list[dict[str, Any]]:
    return [{"status": {"phase": p}} if p else {} for p in phases]


@pytest.mark.parametrize(
    ("phases", "known", "expect"),
    [
        ((), POOL_PHASES, {p: 0 for p in POOL_PHASES}),
        (("Ready", "Ready", None), POOL_PHASES, {**{p: 0 for p in POOL_PHASES}, "Ready": 2,
                                                "Pending": 1}),
        (("Draining", "Weird"), INSTANCE_PHASES, {**{p: 0 for p in INSTANCE_PHASES},
                                                  "Draining": 1, "Weird": 1}),
    ],
)  # fmt: skip
def test_phase_counts(phases: tuple[str | None, ...], known: tuple[str, ...],
                      expect: dict[str, int]) -> None:  # fmt: skip
    assert phase_counts(_objs(*phases), known) == expect


async def test_a_burst_of_triggers_runs_once_and_a_trigger_during_a_run_runs_again() -> None:
    runs: list[str] = []
    started = asyncio.Event()
    release = asyncio.Event()

    async def job() -> None:
        runs.append("run")
        started.set()
        await release.wait()

    c = Coalescer(delay=0.01)
    assert [c.trigger("pool", job) for _ in range(5)] == [True, False, False, False, False]
    assert c.trigger("other", job) is True  # keys are independent
    await started.wait()
    assert c.trigger("pool", job) is True  # the pending run already started: run again
    release.set()
    await c.idle()
    assert len(runs) == 3


async def test_a_failing_job_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def boom() -> None:
        raise RuntimeError("api down")

    c = Coalescer(delay=0)
    c.trigger("pool", boom)
    await c.idle()
    assert "coalesced reconcile failed" in caplog.text


async def test_a_trigger_may_ask_for_its_own_delay() -> None:
    order: list[str] = []

    def job(name: str):  # type: ignore[no-untyped-def]
        async def run() -> None:
            order.append(name)

        return run

    c = Coalescer(delay=0)
    c.trigger("recheck", job("later"), 0.2)  # a drain asking to be looked at again
    c.trigger("event", job("now"))
    await c.idle()
    assert order == ["now", "later"]
