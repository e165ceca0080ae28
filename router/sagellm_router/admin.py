"""Admin routes (off unless ``admin.enabled``; behind the API key when keys are configured).

``GET /admin/status``: per pool the configured and active scheduling policy (for ``adaptive``:
the mode in force and why), queue counters and the PD threshold. ``POST /admin/policy``
``{"pool": NAME, "policy": NAME}`` switches a pool's policy at runtime (``pool`` omitted: all
pools); unknown pool -> 404, unknown policy -> 400.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
from aiohttp import web

from sagellm_router.errors import ApiError
from sagellm_router.state import RouterState


def _json(data: object) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


def add_admin_routes(app: web.Application, state_of: Callable[[], RouterState]) -> None:
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
    app.router.add_post("/admin/policy", policy)
