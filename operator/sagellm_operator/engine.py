"""Read an engine's load from its own ``/metrics`` (the drain's idle check, at the edge)."""

from __future__ import annotations

import aiohttp

from sagellm_core.engine_metrics import requests_in_engine


async def engine_load(url: str, timeout_s: float = 3.0) -> float | None:
    """Running + waiting requests of the engine at ``url``; None when it cannot be read."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"{url.rstrip('/')}/metrics") as resp,
        ):
            if resp.status != 200:
                return None
            return requests_in_engine(await resp.text())
    except (aiohttp.ClientError, OSError, TimeoutError):
        return None
