"""Find the router replicas and read their ``/metrics`` pages, at the edge: the demand series
(the autoscaler's first source) and the instances each holds as draining (a drain's early end).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import aiohttp

from sagellm_core.demand import PoolDemand, add_router_page, draining_instances

if TYPE_CHECKING:
    from sagellm_operator.reconcile.context import Context


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


async def find_routers(ctx: Context) -> list[str]:
    """Router base URLs: the fixed ones, else the Running router pods matching the selector."""
    conf = ctx.settings.autoscaler
    if conf.router_urls:
        return list(conf.router_urls)
    ns = conf.router_namespace or next(iter(ctx.settings.namespaces), "default")
    pods = await ctx.kube.list_pods(ns, conf.router_selector)
    return router_urls(pods, conf.router_port)


async def read_pages(urls: list[str], timeout_s: float = 3.0) -> list[str | None]:
    """Every router's ``/metrics`` page, None where it did not answer."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        return list(await asyncio.gather(*(_page(session, u) for u in urls)))


async def draining_everywhere(urls: list[str], pool: str) -> set[str]:
    """Instances of ``pool`` that every router lists as draining; none when any router did not
    answer, or when there is no router to ask (then only ``D`` ends a discovery wait)."""
    pages = await read_pages(urls, timeout_s=1.0)
    if not pages or any(p is None for p in pages):
        return set()
    lists = [{i for p_, i in draining_instances(p) if p_ == pool} for p in pages if p is not None]
    return set.intersection(*lists)


async def read_demand(urls: list[str], timeout_s: float = 3.0) -> dict[str, PoolDemand]:
    """Demand per pool (``namespace/name``), summed over the routers that answered."""
    total: dict[str, PoolDemand] = {}
    for page in await read_pages(urls, timeout_s):
        if page is not None:
            add_router_page(total, page)
    return total
