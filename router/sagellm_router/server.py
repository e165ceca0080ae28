"""Running the router: build state, discovery and app from settings, serve until stopped."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path

from aiohttp import web

from sagellm_router.app import build_app
from sagellm_router.auth import KeyChecker
from sagellm_router.config import RouterSettings, StaticDiscoverySettings
from sagellm_router.discovery.base import Discovery
from sagellm_router.state import build_state

log = logging.getLogger(__name__)


def make_discovery(settings: RouterSettings, config_path: str | Path | None) -> Discovery:
    discovery = settings.discovery
    if isinstance(discovery, StaticDiscoverySettings):
        from sagellm_router.discovery.static import StaticDiscovery

        return StaticDiscovery(discovery, config_path)
    from sagellm_router.discovery.kubernetes import KubernetesDiscovery

    return KubernetesDiscovery(discovery)


def make_app(
    settings: RouterSettings,
    config_path: str | Path | None = None,
    *,
    discovery: Discovery | None = None,
    seed: int | None = None,
) -> web.Application:
    """The fully wired router app for ``settings`` (discovery defaults to the configured one)."""
    state = build_state(settings, time.monotonic, seed=seed)
    keys = KeyChecker(settings.auth.load_keys())
    if keys.enabled:
        log.info("API key authentication enabled for /v1/*")
    return build_app(state, discovery or make_discovery(settings, config_path), keys)


async def serve(
    settings: RouterSettings,
    config_path: str | Path | None = None,
    *,
    started: asyncio.Event | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM, then drain in-flight requests for ``shutdown_timeout_s``."""
    app = make_app(settings, config_path)
    runner = web.AppRunner(
        app,
        handler_cancellation=True,  # a client that disconnects cancels its upstream request
        shutdown_timeout=settings.server.shutdown_timeout_s,
        access_log=None,
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.server.host, settings.server.port, backlog=1024)
    await site.start()
    log.info("router listening on %s:%s", settings.server.host, settings.server.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if started is not None:
        started.set()
    try:
        await stop.wait()
    finally:
        log.info("router stopping; draining in-flight requests")
        await runner.cleanup()
