"""Admin routes (off unless ``admin.enabled``). On the main port they need a valid API key
(and are refused while no key is configured); with ``admin.port`` they are served only on that
separate listener (``admin.host``, loopback by default), without a key.

``GET /admin/status``: per pool the configured and active scheduling policy (for ``adaptive``:
the mode in force and why), queue counters and the PD threshold. ``POST /admin/policy``
``{"pool": NAME, "policy": NAME}`` switches a pool's policy at runtime (``pool`` omitted: all
pools); unknown pool -> 404, unknown policy -> 400.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from sagellm_router.errors import ApiError
from sagellm_router.state import RouterState


def _json(data: object) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


ExpectHandler = Callable[[web.Request], Awaitable[web.StreamResponse | None]]


def add_admin_routes(
    app: web.Application,
    state_of: Callable[[], RouterState],
    expect_handler: ExpectHandler | None = None,
) -> None:
    async def status(request: web.Request) -> web.Response:
        return _json({"pools": state_of().scheduling_status()})

    async def policy(request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, f"request body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "request body must be a JSON object")
        name, pool = body.get("policy"), body.get("pool")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "'policy' is required and must be a string", param="policy")
        if pool is not None and not isinstance(pool, str):
            raise ApiError(400, "'pool' must be a string", param="pool")
        state = state_of()
        pools = state.set_policy(pool, name)
        status = state.scheduling_status()
        return _json({"pools": {p: status[p] for p in pools}})

    app.router.add_get("/admin/status", status)
    app.router.add_post("/admin/policy", policy, expect_handler=expect_handler)
