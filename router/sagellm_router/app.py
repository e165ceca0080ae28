"""The aiohttp application: OpenAI-compatible routes, middlewares and background tasks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sagellm_router.admin import add_admin_routes
from sagellm_router.auth import KeyChecker
from sagellm_router.discovery.base import Discovery
from sagellm_router.downstream import Downstream, HttpDownstream
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
    """POST /v1/completions, /v1/chat/completions, /v1/embeddings: a layer over ``handle``."""
    state = request.app[STATE]
    raw = await _read_body(request, state.settings.server.client_max_size)
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
    (``ApiError``s are rendered by the fast path itself)."""
    state, keys, services = app[STATE], app[KEYS], app[SERVICES]

    async def serve(path: str, raw: bytes, headers: Mapping[str, str], down: Downstream) -> None:
        keys.check(headers.get("authorization"))
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


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into an OpenAI-style error body; never leak a traceback."""
    try:
        if request.path.startswith(("/v1/", "/admin/")):
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


async def _background(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    await services.start()
    yield
    await services.stop()


async def _on_shutdown(app: web.Application) -> None:
    app[STATE].shutting_down = True


def build_app(state: RouterState, discovery: Discovery, keys: KeyChecker) -> web.Application:
    """The router application; background tasks start when the app starts."""
    app = web.Application(
        middlewares=[errors_middleware], client_max_size=state.settings.server.client_max_size
    )
    app[STATE] = state
    app[SERVICES] = CoreServices(state, discovery)
    app[KEYS] = keys
    app.router.add_post(COMPLETIONS, inference)
    app.router.add_post(CHAT, inference)
    app.router.add_post(EMBEDDINGS, inference)
    app.router.add_get("/v1/models", models_handler(ModelCards()))
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    if state.settings.admin.enabled:
        add_admin_routes(app, lambda: app[STATE])
    app.cleanup_ctx.append(_background)
    app.on_shutdown.append(_on_shutdown)
    return app
