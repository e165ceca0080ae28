"""The aiohttp application: vLLM's HTTP API in front of simulated engines.

Importable API for other packages' tests::

    app = build_app(SimConfig(model="m", sim_time_scale=0.01))   # in-process
    await run_server(config)                                     # what `sagellm sim` runs

Data parallelism: ``--data-parallel-size N`` runs N independent engine cores (own KV cache and
scheduler each) in this process behind one port, balanced like vLLM's internal load balancer
(lowest ``4 x waiting + running``; ``X-data-parallel-rank`` pins a rank). Metrics carry one
series per engine (label ``engine``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from sagellm_sim.config import VLLM_COMPAT_VERSION, SimConfig
from sagellm_sim.embeddings import embeddings
from sagellm_sim.errors import ApiError, not_found_model, schema_error
from sagellm_sim.handlers import chat_completions, completions
from sagellm_sim.kvcache import block_hashes
from sagellm_sim.metrics import CONTENT_TYPE
from sagellm_sim.protocol import Kind, TokenizeBody, chat_prompt_ids, decode_json, prepare, validate
from sagellm_sim.responses import models_list
from sagellm_sim.runner import Clock
from sagellm_sim.shutdown import shut_down, signalled
from sagellm_sim.state import SERVER_KEY, SimServer
from sagellm_sim.tokenizer import tokenize

log = logging.getLogger("sagellm_sim.server")


def error_response(err: ApiError) -> web.Response:
    return web.json_response(err.body(), status=err.status)


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Any]
) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ApiError as err:
        return error_response(err)
    except web.HTTPNotFound:  # an unknown path: FastAPI's plain answer, as vLLM gives it
        return web.json_response({"detail": "Not Found"}, status=404)
    except web.HTTPMethodNotAllowed:
        return web.json_response({"detail": "Method Not Allowed"}, status=405)


async def _health(request: web.Request) -> web.Response:
    dead = any(r.dead for r in request.app[SERVER_KEY].runners)
    return web.Response(status=503 if dead else 200)


async def _version(request: web.Request) -> web.Response:
    return web.json_response({"version": VLLM_COMPAT_VERSION})


async def _models(request: web.Request) -> web.Response:
    srv = request.app[SERVER_KEY]
    c = srv.config
    return web.json_response(models_list(c.accepted_names, c.model, srv.max_model_len, srv.started))


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[SERVER_KEY].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def _tokenize(request: web.Request) -> web.Response:
    srv = request.app[SERVER_KEY]
    body: TokenizeBody = validate(TokenizeBody, decode_json(await request.read()))
    if body.model is not None and body.model not in srv.config.accepted_names:
        raise not_found_model(body.model, srv.config.accepted_names)
    srv.check_accepting()
    if body.messages is not None:
        ids = chat_prompt_ids(body.messages)
    elif isinstance(body.prompt, str):
        ids = tokenize(body.prompt)
    elif body.prompt is not None:
        ids = list(body.prompt)
    else:  # vLLM's body is a union of the two request kinds: both branches report
        raise schema_error([{"type": "missing", "loc": ("body", f), "msg": "Field required",
                             "input": {}} for f in ("prompt", "messages")])  # fmt: skip
    return web.json_response(
        {"count": len(ids), "max_model_len": srv.max_model_len, "tokens": ids, "token_strs": None}
    )


async def _kv_release(request: web.Request) -> web.Response:
    srv = request.app[SERVER_KEY]
    data = decode_json(await request.read())
    engine_id = data.get("remote_engine_id") if isinstance(data, dict) else None
    request_id = data.get("remote_request_id") if isinstance(data, dict) else None
    if engine_id not in srv.engine_ids or not isinstance(request_id, str):
        raise ApiError(f"unknown remote_engine_id {engine_id!r}", 404, "NotFoundError",
                       param="remote_engine_id")  # fmt: skip
    released = srv.runners[srv.engine_ids.index(engine_id)].release_kv(request_id)
    return web.json_response({"released": released})


async def _kv_event_sources(request: web.Request) -> web.Response:
    """KV-event publisher config per DP rank, as vLLM 0.32 serves it ({} without events)."""
    pubs = request.app[SERVER_KEY].kv_publishers
    return web.json_response({str(p.dp_rank): p.source() for p in pubs})


async def _reset_prefix_cache(request: web.Request) -> web.Response:
    """vLLM's dev-mode route (VLLM_SERVER_DEV_MODE=1); fails while blocks are in use."""
    srv = request.app[SERVER_KEY]
    results = [r.reset_prefix_cache() for r in srv.runners]
    return web.json_response({"success": all(results)})


async def _cached_prefix(request: web.Request) -> web.Response:
    """Dev-mode debug route: how many leading prompt tokens of a generation request body (chat
    if it has ``messages``, else completion; tokenized and salted as the engine would) the
    engine's prefix cache holds right now, and will hold once the requests waiting and running
    on it have computed their prompts, on the DP rank it would pick."""
    srv = request.app[SERVER_KEY]
    data = decode_json(await request.read())
    kind: Kind = "chat" if isinstance(data, dict) and "messages" in data else "completion"
    prep = prepare(kind, data, srv.config.served_name, srv.max_model_len)
    if prep.model not in srv.config.accepted_names:
        raise not_found_model(prep.model, srv.config.accepted_names)
    runner = srv.pick_runner(request.headers.get("X-data-parallel-rank"))
    hashes = block_hashes(prep.prompt_ids, srv.config.block_size, prep.cache_salt)
    core, prompt = runner.core, len(prep.prompt_ids)
    return web.json_response({
        "cached_tokens": core.cached_prompt_tokens(hashes, prompt),
        "cached_tokens_with_pending": core.pending_prompt_tokens(hashes, prompt),
        "prompt_tokens": prompt, "block_size": srv.config.block_size,
        "data_parallel_rank": runner.index,
    })  # fmt: skip


async def _faults(request: web.Request) -> web.Response:
    srv = request.app[SERVER_KEY]
    if request.method == "POST":
        data = decode_json(await request.read())
        if not isinstance(data, dict):
            raise ApiError("the body must be a JSON object of fault fields", param="body")
        try:
            srv.faults.update(data)
        except ValueError as exc:
            raise ApiError(str(exc), param="body") from exc
        log.warning("faults changed via admin endpoint: %s", srv.faults.as_dict())
    return web.json_response(srv.faults.as_dict())


def build_app(
    config: SimConfig, *, clock: Clock = time.monotonic, on_crash: Callable[[], None] | None = None
) -> web.Application:
    """A ready-to-run aiohttp application simulating one vLLM server."""
    srv = SimServer(config, clock, on_crash)
    app = web.Application(middlewares=[_errors], client_max_size=64 * 1024**2)
    app[SERVER_KEY] = srv
    app.on_startup.append(srv.start)
    app.on_cleanup.append(srv.stop)
    r = app.router
    if config.task == "embed":
        r.add_post("/v1/embeddings", embeddings)
    else:
        r.add_post("/v1/completions", completions)
        r.add_post("/v1/chat/completions", chat_completions)
    r.add_get("/v1/models", _models)
    r.add_get("/health", _health)
    r.add_get("/ping", _health)
    r.add_post("/ping", _health)
    r.add_get("/version", _version)
    r.add_post("/tokenize", _tokenize)
    r.add_get("/metrics", _metrics)
    r.add_post("/sim/kv_release", _kv_release)
    r.add_get("/kv_event_sources", _kv_event_sources)
    if config.dev_mode:
        r.add_post("/reset_prefix_cache", _reset_prefix_cache)
        r.add_post("/sim/cached_prefix", _cached_prefix)
    if config.sim_admin:
        r.add_get("/sim/faults", _faults)
        r.add_post("/sim/faults", _faults)
    return app


async def run_server(
    config: SimConfig, *, app: web.Application | None = None, ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> None:  # fmt: skip
    """Serve until SIGTERM/SIGINT (or ``stop``), then shut down as vLLM 0.32 does.

    The socket only listens after ``--sim-startup-delay``. See ``sagellm_sim.shutdown``.
    """
    app = app if app is not None else build_app(config)
    if config.sim_startup_delay > 0:
        log.info("simulating start-up for %.1fs (connections refused)", config.sim_startup_delay)
        await asyncio.sleep(config.sim_startup_delay)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    log.info("sagellm sim serving %s on http://%s:%d", config.served_name, config.host, config.port)
    if ready is not None:
        ready.set()
    try:
        await (stop or signalled()).wait()
        await shut_down(app[SERVER_KEY], site, config.shutdown_timeout)
    finally:
        await runner.cleanup()
