"""The aiohttp application: OpenAI-compatible routes, middlewares and background tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sagellm_router.auth import KeyChecker
from sagellm_router.discovery.base import Discovery
from sagellm_router.errors import ApiError
from sagellm_router.health import probe_ejected
from sagellm_router.proxy import Exchange, forward
from sagellm_router.state import RouterState
from sagellm_router.stats.scraper import Scraper
from sagellm_router.upstream import UpstreamPool
from sagellm_router.validation import CHAT, COMPLETIONS, parse_body

log = logging.getLogger(__name__)

STATE = web.AppKey("state", RouterState)
SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", UpstreamPool)
DISCOVERY = web.AppKey("discovery", Discovery)
KEYS = web.AppKey("keys", KeyChecker)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"request body is {request.content_length} bytes; the limit is {limit}")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise ApiError(413, f"request body exceeds the limit of {limit} bytes") from exc


async def inference(request: web.Request) -> web.StreamResponse:
    """POST /v1/completions and /v1/chat/completions."""
    state = request.app[STATE]
    raw = await _read_body(request, state.settings.server.client_max_size)
    parsed = parse_body(raw, request.path)
    parsed.session_key = request.headers.get("x-session-id") or parsed.session_key
    pools = state.table.for_model(parsed.model)
    if not pools:
        served = ", ".join(state.table.models()) or "none"
        raise ApiError(
            404, f"model {parsed.model!r} does not exist; served models: {served}", param="model"
        )
    ex = Exchange(
        request=request,
        parsed=parsed,
        raw=raw,
        request_id=_request_id(request.headers.get("x-request-id")),
        override=request.headers.get("x-routing-strategy"),
        started=state.clock(),
    )
    try:
        async with state.admission.admit(parsed, pools[0]):
            response = await forward(state, request.app[UPSTREAM], ex)
        ex.status = ex.status or response.status
        return response
    except ApiError as err:
        ex.status = err.status
        raise
    except asyncio.CancelledError:
        ex.status = 499  # client closed the request
        raise
    finally:
        _observe(state, ex)


def _request_id(given: str | None) -> str:
    """The client's request id if it is short printable ASCII, else a fresh one."""
    if given and len(given) <= 128 and given.isascii() and given.isprintable():
        return given
    return uuid.uuid4().hex


def _observe(state: RouterState, ex: Exchange) -> None:
    m = state.metrics
    m.child(m.requests, ex.parsed.model, ex.pool, ex.instance, str(ex.status or 500)).inc()
    m.child(m.e2e, ex.parsed.model, ex.pool).observe(state.clock() - ex.started)


async def models(request: web.Request) -> web.Response:
    """GET /v1/models: the union of the models of all pools."""
    state = request.app[STATE]
    created = int(time.time())
    data = [
        {"id": name, "object": "model", "created": created, "owned_by": "sagellm", "root": name}
        for name in state.table.models()
    ]
    return web.Response(
        body=orjson.dumps({"object": "list", "data": data}), content_type="application/json"
    )


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def ready(request: web.Request) -> web.Response:
    if request.app[STATE].ready():
        return web.Response(text="ready")
    raise ApiError(503, "no ready endpoint in any pool", retry_after=1)


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = generate_latest(state.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into an OpenAI-style error body; never leak a traceback."""
    try:
        if request.path.startswith("/v1/"):
            request.app[KEYS].check(request.headers.get("Authorization"))
        return await handler(request)
    except ApiError as err:
        return err.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return ApiError(exc.status, exc.reason or "request failed").response()
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return ApiError(500, "internal router error; see router logs").response()


async def _discovery_loop(app: web.Application) -> None:
    state = app[STATE]
    async for pools in app[DISCOVERY].updates():
        state.apply_pools(pools)
        log.info("pools updated", extra={"pools": [p.name for p in pools]})


async def _scrape_loop(app: web.Application) -> None:
    state = app[STATE]
    settings = state.settings.scrape
    scraper = Scraper(app[SESSION], settings, state.clock, state.engine_stats)
    while True:
        await scraper.scrape_all(e.url for e in state.table.endpoints())
        await asyncio.sleep(settings.interval_s)


async def _probe_loop(app: web.Application) -> None:
    state = app[STATE]
    settings = state.settings.health
    while True:
        await asyncio.sleep(settings.probe_interval_s)
        if state.health.ejected and await probe_ejected(
            state.health, app[SESSION], settings.probe_timeout_s
        ):
            state.update_endpoint_gauges()


async def _background(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=60)
    t = app[STATE].settings.timeouts
    timeout = aiohttp.ClientTimeout(
        total=t.total_s, sock_connect=t.connect_s, sock_read=t.read_idle_s
    )
    app[SESSION] = aiohttp.ClientSession(connector=connector, timeout=timeout)
    app[UPSTREAM] = UpstreamPool(t.connect_s, t.read_idle_s)
    loops = [_discovery_loop, _probe_loop]
    if app[STATE].settings.scrape.enabled:
        loops.append(_scrape_loop)
    tasks = [asyncio.create_task(loop(app), name=loop.__name__) for loop in loops]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await app[SESSION].close()
    await app[UPSTREAM].close()


async def _on_shutdown(app: web.Application) -> None:
    app[STATE].shutting_down = True


def build_app(state: RouterState, discovery: Discovery, keys: KeyChecker) -> web.Application:
    """The router application; background tasks start when the app starts."""
    app = web.Application(
        middlewares=[errors_middleware], client_max_size=state.settings.server.client_max_size
    )
    app[STATE] = state
    app[DISCOVERY] = discovery
    app[KEYS] = keys
    app.router.add_post(COMPLETIONS, inference)
    app.router.add_post(CHAT, inference)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    app.cleanup_ctx.append(_background)
    app.on_shutdown.append(_on_shutdown)
    return app
