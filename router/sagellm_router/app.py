"""The aiohttp application: OpenAI-compatible routes, middlewares and background tasks.

The edge checks (API key, declared size) run from the head, through ``edge.Edge`` as on the fast
path: in the middleware for ordinary requests and in the ``Expect`` handler, so a refused
``Expect: 100-continue`` request gets its 401/413 instead of ``100 Continue``. Bodies are read
piece by piece, counted in the edge's buffer budget as they arrive (chunked ones too), within
``edge.body_timeout_s``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sagellm_router.admin import add_admin_routes
from sagellm_router.auth import KeyReloader
from sagellm_router.discovery.base import Discovery
from sagellm_router.downstream import Downstream, HttpDownstream
from sagellm_router.edge import Edge, over_budget, render, timed_out, too_large
from sagellm_router.errors import ApiError
from sagellm_router.fastpath.protocol import Serve
from sagellm_router.model_cards import ModelCards
from sagellm_router.pipeline import Job, handle
from sagellm_router.services import CoreServices
from sagellm_router.state import RouterState
from sagellm_router.upstream import Upstream
from sagellm_router.validation import CHAT, COMPLETIONS, EMBEDDINGS, parse_body

INFERENCE_PATHS = frozenset({COMPLETIONS, CHAT, EMBEDDINGS})

log = logging.getLogger(__name__)

STATE = web.AppKey("state", RouterState)
SERVICES = web.AppKey("services", CoreServices)
EDGE = web.AppKey("edge", Edge)
RELOADER = web.AppKey("reloader", KeyReloader)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def respond(err: ApiError, *, close: bool = False) -> web.Response:
    """aiohttp's answer to ``err`` (``edge.render``); ``close``: end the connection after it."""
    status, headers, body = render(err)
    response = web.Response(status=status, body=body, headers=headers)
    if close:
        response.force_close()
    return response


async def read_body(request: web.Request) -> bytes:
    """The body, counted in the edge's buffer budget while it arrives (released once read),
    refused with 413 as soon as it passes the limit and 408 if slower than the body timeout."""
    edge = request.app[EDGE]
    body, held = bytearray(), 0
    try:
        async with asyncio.timeout(edge.settings.body_timeout_s):
            async for piece in request.content.iter_any():
                if len(body) + len(piece) > edge.max_body:
                    raise too_large(None, edge.max_body)
                if not edge.reserve(len(piece)):
                    raise over_budget("buffered request bytes")
                held += len(piece)
                body += piece
    except TimeoutError as exc:
        raise timed_out("body", edge.settings.body_timeout_s) from exc
    finally:
        edge.release(held)
    return bytes(body)


async def inference(request: web.Request) -> web.StreamResponse:
    """POST /v1/completions, /v1/chat/completions, /v1/embeddings: a layer over ``handle``."""
    state = request.app[STATE]
    raw = await read_body(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    down = HttpDownstream(request)
    await run_inference(state, request.app[SERVICES].upstream, request.path, raw, headers, down)
    assert down.response is not None
    return down.response


async def run_inference(
    state: RouterState,
    upstream: Upstream,
    path: str,
    raw: bytes,
    headers: Mapping[str, str],
    down: Downstream,
) -> None:
    """Validate the body of an inference request and serve it into ``down``."""
    parsed = parse_body(raw, path, state.settings.limits.max_embedding_inputs)
    parsed.session_key = headers.get("x-session-id") or parsed.session_key
    await handle(state, upstream, Job(parsed, raw, headers), down)


def fast_serve(app: web.Application) -> Serve:
    """The fast path's handler: what ``errors_middleware`` and ``inference`` do, minus aiohttp
    (the edge checks ran on the head; ``ApiError``s are rendered by the fast path itself)."""
    state, services = app[STATE], app[SERVICES]

    async def serve(path: str, raw: bytes, headers: Mapping[str, str], down: Downstream) -> None:
        await run_inference(state, services.upstream, path, raw, headers, down)

    return serve


def models_handler(cards: ModelCards) -> Handler:
    """GET /v1/models: every served model's card, as its engines report it (model_cards)."""

    async def models(request: web.Request) -> web.Response:
        listing = await cards.listing(request.app[STATE], request.app[SERVICES].session)
        return web.Response(body=orjson.dumps(listing), content_type="application/json")

    return models


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def ready(request: web.Request) -> web.Response:
    if request.app[STATE].ready():
        return web.Response(text="ready")
    raise ApiError(503, "no ready endpoint in any pool", retry_after=1)


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.refresh_scheduling_gauges()
    body = generate_latest(state.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def head_error(request: web.Request) -> ApiError | None:
    """The edge's verdict on the request's head (API key, declared size)."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    return request.app[EDGE].check_head(request.path, headers, request.content_length)


async def expect_handler(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue``: the edge's 401/413 (connection closed, body never read), else
    ``100 Continue``; any other expectation is 417."""
    err = head_error(request)
    if err is not None:
        return respond(err, close=True)
    if request.headers.get("Expect", "").lower() != "100-continue":
        return respond(ApiError(417, "only 'Expect: 100-continue' is supported"), close=True)
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    return None


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The edge checks, then the handler; every failure becomes an OpenAI-style error body
    (never a traceback). While the router drains, answers carry ``Connection: close``."""
    response = await _guarded(request, handler)
    if request.app[EDGE].draining and not response.prepared:
        response.force_close()
    return response


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    refused = head_error(request)
    if refused is not None:  # the body, if any, was not read: do not keep the connection
        return respond(refused, close=True)
    try:
        return await handler(request)
    except ApiError as err:
        return respond(err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return respond(ApiError(exc.status, exc.reason or "request failed"))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return respond(ApiError(500, "internal router error; see router logs"))


async def _background(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    await services.start()
    reloader = asyncio.create_task(app[RELOADER].run()) if RELOADER in app else None
    yield
    if reloader is not None:
        reloader.cancel()
    await services.stop()


async def _on_shutdown(app: web.Application) -> None:
    app[STATE].shutting_down = True


def build_app(
    state: RouterState, discovery: Discovery, edge: Edge, reloader: KeyReloader | None = None
) -> web.Application:
    """The router application; background tasks start when the app starts. Admin routes are
    here only when enabled without their own listener (``admin.port``)."""
    app = web.Application(
        middlewares=[errors_middleware], client_max_size=state.settings.server.client_max_size
    )
    app[STATE] = state
    app[SERVICES] = CoreServices(state, discovery)
    app[EDGE] = edge
    if reloader is not None:
        app[RELOADER] = reloader
    for path in (COMPLETIONS, CHAT, EMBEDDINGS):
        app.router.add_post(path, inference, expect_handler=expect_handler)
    app.router.add_get("/v1/models", models_handler(ModelCards()))
    add_probe_routes(app)
    admin = state.settings.admin
    if admin.enabled and admin.port is None:
        add_admin_routes(app, lambda: app[STATE], expect_handler=expect_handler)
    app.cleanup_ctx.append(_background)
    app.on_shutdown.append(_on_shutdown)
    return app


def add_probe_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)


def side_app(state: RouterState, *, admin: bool) -> web.Application:
    """The probe listener's app (/health, /ready, /metrics) or the admin listener's (admin
    routes, no key: it is meant to listen on loopback only)."""
    app = web.Application(middlewares=[_plain_errors])
    app[STATE] = state
    if admin:
        add_admin_routes(app, lambda: app[STATE])
    else:
        add_probe_routes(app)
    return app


@web.middleware
async def _plain_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as err:
        return respond(err)
