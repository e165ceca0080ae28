"""The two legs of vLLM's NIXL proxy protocol (prefill with do_remote_decode, then decode).

Prefill leg: the same path, ``max_tokens=1`` (``max_completion_tokens=1`` when present),
``stream=false``, no ``stream_options``/``min_tokens``, and ``kv_transfer_params`` asking for a
remote decode; the engine answers with the params the decode instance needs, treated as opaque.
Decode leg: the client's body plus those params. Both legs carry the same ``X-Request-Id``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import orjson

from sagellm_router.exchange import Exchange, Retryable, Tracked, answered, open_attempt
from sagellm_router.state import RouterState
from sagellm_router.types import Endpoint
from sagellm_router.upstream import Upstream

log = logging.getLogger(__name__)

PREFILL_REQUEST_PARAMS: dict[str, object] = {
    "do_remote_decode": True,
    "do_remote_prefill": False,
    "remote_engine_id": None,
    "remote_block_ids": None,
    "remote_host": None,
    "remote_port": None,
}
_DROPPED = ("stream_options", "min_tokens", "min_completion_tokens")


def prefill_body(body: Mapping[str, Any]) -> bytes:
    """The prefill leg's body for the client's ``body`` (pure)."""
    leg = {k: v for k, v in body.items() if k not in _DROPPED}
    leg["max_tokens"] = 1
    if "max_completion_tokens" in leg:
        leg["max_completion_tokens"] = 1
    leg["stream"] = False
    leg["kv_transfer_params"] = dict(PREFILL_REQUEST_PARAMS)
    return orjson.dumps(leg)


def decode_body(body: Mapping[str, Any], params: Mapping[str, Any]) -> bytes:
    """The decode leg's body: the client's body with the prefill's ``kv_transfer_params``."""
    return orjson.dumps({**body, "kv_transfer_params": dict(params)})


def transfer_params(status: int, payload: bytes) -> tuple[dict[str, Any] | None, str]:
    """The ``kv_transfer_params`` of a prefill answer, or None and why not (pure)."""
    if status != 200:
        return None, f"prefill_status_{status}"
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None, "prefill_bad_json"
    params = obj.get("kv_transfer_params") if isinstance(obj, dict) else None
    if not isinstance(params, dict) or not params:
        return None, "no_kv_transfer_params"  # e.g. an engine without a KV connector
    return params, ""


async def run_prefill(
    state: RouterState, upstream: Upstream, pool: str, endpoint: Endpoint, ex: Exchange
) -> tuple[dict[str, Any] | None, str]:
    """POST the prefill leg of ``ex`` to ``endpoint``; (params, "") or (None, reason).

    The leg is booked like any attempt of the proxy (``exchange.Tracked``: in-flight gauge and
    tracker; ``answered``: health and time to first byte; a failure goes to
    ``RouterState.endpoint_failed`` with the proxy's reason, ``first_byte_timeout`` when no
    answer came within ``pd.prefill_timeout_s``). The fallback reason is ``prefill_`` + that.
    """
    body = prefill_body(ex.parsed.body)
    with Tracked(state, pool, endpoint) as slot:
        started = state.clock()
        try:
            async with asyncio.timeout(state.settings.pd.prefill_timeout_s):
                opened = await open_attempt(state, upstream, ex, endpoint, body, stream=False)
        except (Retryable, TimeoutError) as exc:
            reason = exc.reason if isinstance(exc, Retryable) else "first_byte_timeout"
            state.endpoint_failed(pool, endpoint, reason)
            return None, "prefill_" + reason
        answered(state, endpoint, started, slot)
        await opened.close()
        return transfer_params(opened.response.status, opened.body or b"")
