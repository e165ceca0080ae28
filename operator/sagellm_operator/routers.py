"""Read the routers' demand series (the autoscaler's first source), at the edge."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from sagellm_core.demand import PoolDemand, add_router_page


def router_urls(pods: list[dict[str, Any]], port: int) -> list[str]:
    """Base URLs of the running, not deleted router pods that have an IP."""
    urls = []
    for pod in pods:
        status = pod.get("status") or {}
        ip = status.get("podIP")
        if ip and status.get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp"):
            urls.append(f"http://{ip}:{port}")
    return sorted(urls)


async def _page(session: aiohttp.ClientSession, url: str) -> str | None:
    try:
        async with session.get(f"{url.rstrip('/')}/metrics") as resp:
            return await resp.text() if resp.status == 200 else None
    except (aiohttp.ClientError, OSError, TimeoutError):
        return None


async def read_demand(urls: list[str], timeout_s: float = 3.0) -> dict[str, PoolDemand]:
    """Demand per pool (``namespace/name``), summed over the routers that answered."""
    total: dict[str, PoolDemand] = {}
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        pages = await asyncio.gather(*(_page(session, u) for u in urls))
    for page in pages:
        if page is not None:
            add_router_page(total, page)
    return total
