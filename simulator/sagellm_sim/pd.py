"""Prefill/decode disaggregation: the NIXL-style ``kv_transfer_params`` protocol.

Prefill leg (body has ``kv_transfer_params.do_remote_decode = true``, ``max_tokens = 1``): the
engine prefills, keeps the request's KV blocks (``hold_blocks``) and answers with top-level
``kv_transfer_params`` naming them. The blocks are released when the decode side reports it
pulled them (``POST /sim/kv_release``, the simulator's stand-in for the NIXL notification), or
after the abort timeout (VLLM_NIXL_ABORT_REQUEST_TIMEOUT, default 480 s), like vLLM.

Decode leg (``do_remote_prefill = true``): the prompt's KV is "pulled" instead of computed: the
request waits ``CostModel.kv_transfer_seconds(tokens)`` and then needs only its last prompt token
computed. Instances are separate processes, so the decode side trusts ``remote_num_tokens`` when
present (otherwise its own prompt token count).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sagellm_sim.engine import SimRequest


class KvParamsError(ValueError):
    """Malformed ``kv_transfer_params``; ``param`` names the offending field."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class RemotePrefill:
    """What a decode leg received from its prefill instance."""

    engine_id: str
    request_id: str
    block_ids: tuple[int, ...]
    host: str
    port: int
    tp_size: int
    num_tokens: int | None


@dataclass(frozen=True)
class KvRequest:
    remote_decode: bool  # this is a prefill leg
    remote_prefill: RemotePrefill | None  # this is a decode leg


_REQUIRED_FOR_PREFILL: dict[str, type] = {
    "remote_engine_id": str,
    "remote_request_id": str,
    "remote_host": str,
    "remote_port": int,
}


def _field(raw: dict[str, Any], name: str, kind: type, default: Any = None) -> Any:
    value = raw.get(name, default)
    if value is None:
        return default
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise KvParamsError(
            f"kv_transfer_params.{name}",
            f"kv_transfer_params.{name} must be of type {kind.__name__}, got {value!r}",
        )
    return value


def parse_kv_params(raw: Any) -> KvRequest | None:
    """Validate a request's ``kv_transfer_params``; None when absent or a no-op."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise KvParamsError("kv_transfer_params", "kv_transfer_params must be a JSON object")
    remote_decode = _field(raw, "do_remote_decode", bool, False)
    remote_prefill = _field(raw, "do_remote_prefill", bool, False)
    if remote_decode and remote_prefill:
        raise KvParamsError(
            "kv_transfer_params.do_remote_prefill",
            "kv_transfer_params: do_remote_decode and do_remote_prefill cannot both be true",
        )
    if remote_prefill:
        return KvRequest(False, _parse_remote_prefill(raw))
    return KvRequest(True, None) if remote_decode else None


def _parse_remote_prefill(raw: dict[str, Any]) -> RemotePrefill:
    for name, kind in _REQUIRED_FOR_PREFILL.items():
        if raw.get(name) is None:
            raise KvParamsError(
                f"kv_transfer_params.{name}",
                f"kv_transfer_params.{name} is required when do_remote_prefill is true",
            )
        _field(raw, name, kind)
    blocks = raw.get("remote_block_ids")
    if not isinstance(blocks, list) or not all(
        isinstance(b, int) and not isinstance(b, bool) for b in blocks
    ):
        raise KvParamsError(
            "kv_transfer_params.remote_block_ids",
            "kv_transfer_params.remote_block_ids must be a list of integers",
        )
    num_tokens = _field(raw, "remote_num_tokens", int)
    if num_tokens is not None and num_tokens < 0:
        raise KvParamsError(
            "kv_transfer_params.remote_num_tokens",
            "kv_transfer_params.remote_num_tokens must be >= 0",
        )
    return RemotePrefill(
        engine_id=raw["remote_engine_id"],
        request_id=raw["remote_request_id"],
        block_ids=tuple(blocks),
        host=raw["remote_host"],
        port=raw["remote_port"],
        tp_size=_field(raw, "tp_size", int, 1),
        num_tokens=num_tokens,
    )


def producer_params(
    req: SimRequest, engine_id: str, host: str, port: int, tp_size: int
) -> dict[str, Any]:
    """The top-level ``kv_transfer_params`` a prefill instance answers with."""
    return {
        "do_remote_prefill": True,
        "do_remote_decode": False,
        "remote_block_ids": list(req.blocks),
        "remote_engine_id": engine_id,
        "remote_request_id": req.request_id,
        "remote_host": host,
        "remote_port": port,
        "tp_size": tp_size,
        "remote_num_tokens": req.prompt_len,
    }


class HeldKV:
    """Prefilled requests whose KV waits for a remote decode, with expiry times."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[SimRequest, float]] = {}

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._held

    def hold(self, req: SimRequest, expires_at: float) -> None:
        self._held[req.request_id] = (req, expires_at)

    def pop(self, request_id: str) -> SimRequest | None:
        entry = self._held.pop(request_id, None)
        return entry[0] if entry else None

    def expired(self, now: float) -> list[SimRequest]:
        gone = [rid for rid, (_, exp) in self._held.items() if exp <= now]
        return [self._held.pop(rid)[0] for rid in gone]

    def next_expiry(self) -> float | None:
        return min((exp for _, exp in self._held.values()), default=None)
