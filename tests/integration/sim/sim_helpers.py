"""Helpers shared by the simulator integration tests."""

from __future__ import annotations

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


#: ``await start_sim(config)`` -> base URL (the ``start_sim`` fixture of conftest.py).
StartSim = Callable[..., Awaitable[str]]
