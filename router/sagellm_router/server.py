"""Running the router: build state, discovery and app from settings, serve until stopped."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path

from aiohttp import web

from sagellm_router.app import INFERENCE_PATHS, STATE, build_app, fast_serve
from sagellm_router.auth import KeyChecker
from sagellm_router.config import RouterSettings, StaticDiscoverySettings
from sagellm_router.discovery.base import Discovery
from sagellm_router.fastpath.protocol import Listener
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


class RouterServer:
    """The router app on a TCP socket: plain inference requests go the fast path, everything
    else (and every connection once it sends something else) to aiohttp."""

    def __init__(self, app: web.Application, shutdown_timeout_s: float) -> None:
        self.app = app
        self._timeout_s = shutdown_timeout_s
        self._runner = web.AppRunner(
            app,
            handler_cancellation=True,  # a client that disconnects cancels its upstream request
            shutdown_timeout=shutdown_timeout_s,
            access_log=None,
        )
        self._server: asyncio.Server | None = None
        self._listener: Listener | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int) -> int:
        """Start background services and listen; returns the bound port (``port`` 0: any)."""
        await self._runner.setup()
        assert self._runner.server is not None
        state = self.app[STATE]
        listener = Listener(
            fast_serve(self.app),
            self._runner.server,
            INFERENCE_PATHS,
            max_body=state.settings.server.client_max_size,
        )
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(listener.protocol, host, port, backlog=1024)
        self._listener, self._sweeper = listener, asyncio.create_task(listener.sweep())
        port = int(self._server.sockets[0].getsockname()[1])
        log.info("router listening on %s:%s", host, port)
        return port

    async def stop(self) -> None:
        """Stop listening, let in-flight requests finish (``shutdown_timeout_s`` for the fast
        path, then for aiohttp's connections), stop background services."""
        self.app[STATE].shutting_down = True
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._listener is not None:
            await self._listener.drain(self._timeout_s)
        await self._runner.cleanup()


async def serve(
    settings: RouterSettings,
    config_path: str | Path | None = None,
    *,
    started: asyncio.Event | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM, then drain in-flight requests for ``shutdown_timeout_s``."""
    server = RouterServer(make_app(settings, config_path), settings.server.shutdown_timeout_s)
    await server.start(settings.server.host, settings.server.port)
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
        await server.stop()
