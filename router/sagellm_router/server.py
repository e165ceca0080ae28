"""Running the router: build state, discovery and app from settings, serve until stopped."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from pathlib import Path

from aiohttp import web

from sagellm_router.app import EDGE, INFERENCE_PATHS, STATE, build_app, fast_serve, side_app
from sagellm_router.auth import KeyChecker, KeyReloader
from sagellm_router.config import RouterSettings, StaticDiscoverySettings
from sagellm_router.discovery.base import Discovery
from sagellm_router.edge import Edge
from sagellm_router.fastpath.protocol import LINGER_S, Listener
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
    keys = KeyChecker(())
    reloader = KeyReloader(settings.auth, keys)
    reloader.reload()
    if keys.enabled:
        log.info("API key authentication enabled for /v1/* and /admin/*: %d keys", keys.count)
    admin = settings.admin
    if admin.enabled and admin.port is None and not keys.enabled:
        log.warning("admin routes need an API key on the main port and none is configured: "
                    "they answer 401 until keys are configured (or set admin.port)")  # fmt: skip
    edge = Edge(settings.edge, keys, settings.server.client_max_size,
                admin_keyed=admin.enabled and admin.port is None)  # fmt: skip
    live = reloader if settings.auth.api_keys_file else None
    return build_app(state, discovery or make_discovery(settings, config_path), edge, live)


class RouterServer:
    """The router app on a TCP socket: plain inference requests go the fast path, everything
    else (and every connection once it sends something else) to aiohttp. Optional side
    listeners: probes (``server.probe_port``) and admin (``admin.port``)."""

    def __init__(self, app: web.Application, shutdown_timeout_s: float) -> None:
        self.app = app
        self._timeout_s = shutdown_timeout_s
        self._keepalive_s = app[EDGE].settings.keepalive_s
        self._runner = web.AppRunner(
            app,
            handler_cancellation=True,  # a client that disconnects cancels its upstream request
            shutdown_timeout=shutdown_timeout_s,
            keepalive_timeout=self._keepalive_s,
            lingering_time=LINGER_S,  # after a refusal, unread body bytes are dropped this long
            access_log=None,
        )
        self._server: asyncio.Server | None = None
        self._listener: Listener | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._sides: list[web.AppRunner] = []
        self.probe_port: int | None = None
        self.admin_port: int | None = None

    async def start(self, host: str, port: int) -> int:
        """Start background services and listen; returns the bound port (``port`` 0: any)."""
        await self._runner.setup()
        assert self._runner.server is not None
        state = self.app[STATE]
        listener = Listener(fast_serve(self.app), self._runner.server, INFERENCE_PATHS,
                            self.app[EDGE])  # fmt: skip
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(listener.protocol, host, port, backlog=1024)
        self._listener, self._sweeper = listener, asyncio.create_task(listener.sweep())
        port = int(self._server.sockets[0].getsockname()[1])
        log.info("router listening on %s:%s", host, port)
        settings = state.settings
        if settings.server.probe_port is not None:
            app = side_app(state, admin=False)
            self.probe_port = await self._side(app, host, settings.server.probe_port)
            log.info("probes (/health, /ready, /metrics) also on port %s", self.probe_port)
        if settings.admin.enabled and settings.admin.port is not None:
            app = side_app(state, admin=True)
            self.admin_port = await self._side(app, settings.admin.host, settings.admin.port)
            log.info("admin routes on %s:%s only", settings.admin.host, self.admin_port)
        return port

    async def _side(self, app: web.Application, host: str, port: int) -> int:
        runner = web.AppRunner(app, access_log=None, keepalive_timeout=self._keepalive_s)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._sides.append(runner)
        return int(runner.addresses[0][1])

    async def shutdown(self, prestop_delay_s: float) -> None:
        """The shutdown sequence: ``/ready`` answers 503 at once; everything is still served
        for ``prestop_delay_s`` (load balancers take the router out meanwhile); then ``stop``."""
        self.app[STATE].shutting_down = True
        if prestop_delay_s > 0:
            log.info("not ready; serving %.3gs more before stopping", prestop_delay_s)
            await asyncio.sleep(prestop_delay_s)
        await self.stop()

    async def stop(self) -> None:
        """Stop accepting connections; answer requests on open ones with ``Connection: close``
        and let running ones finish (``shutdown_timeout_s`` for the fast path, then for
        aiohttp's connections); stop background services and the side listeners."""
        self.app[STATE].shutting_down = True
        self.app[EDGE].draining = True
        if self._server is not None:
            self._server.close()
        if self._listener is not None:
            await self._listener.drain(self._timeout_s)
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self._runner.cleanup()
        for runner in self._sides:
            await runner.cleanup()


def freeze_startup_heap() -> int:
    """Collect once, then move every object alive now (modules, classes, settings, the app) to
    the permanent generation; returns how many objects are frozen.

    A full (generation 2) collection traverses every tracked object. The router starts with
    ~60k of them and never frees them, and under load enough request objects outlive two young
    collections to trigger a full one every few hundred ms: each took ~20-30 ms of CPU on the
    event loop, stalling every request in flight (the p99 at saturation). Frozen objects are
    skipped, so full collections only walk what was created since.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


async def serve(
    settings: RouterSettings,
    config_path: str | Path | None = None,
    *,
    started: asyncio.Event | None = None,
) -> None:
    """Serve until SIGTERM (the shutdown sequence, ``server.prestop_delay_s`` first) or SIGINT
    (the same without the pre-stop delay: an interactive stop)."""
    server = RouterServer(make_app(settings, config_path), settings.server.shutdown_timeout_s)
    await server.start(settings.server.host, settings.server.port)
    frozen = freeze_startup_heap()
    log.debug("startup heap frozen: %d objects", frozen)
    delay: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    loop = asyncio.get_running_loop()

    def stop(seconds: float) -> None:
        if not delay.done():
            delay.set_result(seconds)

    loop.add_signal_handler(signal.SIGTERM, stop, settings.server.prestop_delay_s)
    loop.add_signal_handler(signal.SIGINT, stop, 0.0)
    if started is not None:
        started.set()
    try:
        await delay
    finally:
        if not delay.done():
            delay.set_result(0.0)
        log.info("router stopping: not ready now, pre-stop delay %.3gs, then draining",
                 delay.result())  # fmt: skip
        await server.shutdown(delay.result())
