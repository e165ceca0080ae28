"""Helpers shared by the simulator integration tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
from prometheus_client.parser import text_string_to_metric_families


async def scrape(http: aiohttp.ClientSession, base: str) -> dict[str, float]:
    """``{'name{label=value,...}': value}`` from /metrics (labels sorted, engine kept)."""
    async with http.get(f"{base}/metrics") as resp:
        text = await resp.text()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if k != "model_name")
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], within: float = 10.0, interval: float = 0.02
) -> None:
    """Poll until ``predicate()`` is true (a condition, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(interval)


#: ``await start_sim(config)`` -> base URL (the ``start_sim`` fixture of conftest.py).
StartSim = Callable[..., Awaitable[str]]
