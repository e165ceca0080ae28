"""From a ``RequestMetadata`` to the OpenAI body sent, and from a finished record to the
``process_request`` result (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from control_plane.manager.records import Record
from control_plane.types import ExecutionInstance, RequestMetadata, RequestStatus, sampling_body


class RequestFailed(RuntimeError):
    """``process_request`` did not complete: the message says why (status and reason)."""


def completion_body(
    request: RequestMetadata, instances: Iterable[ExecutionInstance], default_max_tokens: int
) -> dict[str, Any]:
    """The ``/v1/completions`` body for ``request``; ``ValueError`` saying what to add when
    the request cannot be sent."""
    if request.prompt is None or request.prompt == "":
        raise ValueError(
            f"request {request.request_id!r} has no prompt: add prompt='...' to its "
            "RequestMetadata (the text the model should continue)"
        )
    if not isinstance(request.prompt, str):
        raise TypeError(f"RequestMetadata.prompt must be a str, got {type(request.prompt)}")
    models = sorted({i.model_name for i in instances if i.model_name})
    model = request.model_name or (models[0] if len(models) == 1 else None)
    if model is None:
        raise ValueError(
            f"request {request.request_id!r}: set model_name= to one of the registered "
            f"models {models}"
            if models
            else "register an ExecutionInstance before submitting"
        )
    if model not in models:
        raise ValueError(
            f"request {request.request_id!r}: model {model!r} has no registered instance; "
            f"registered models: {models}"
        )
    body: dict[str, Any] = {"model": model, "prompt": request.prompt}
    body.update(sampling_body(request.sampling_params))
    for name in ("max_tokens", "temperature", "top_p"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    body.setdefault("max_tokens", default_max_tokens)
    if request.user_id:
        body["user"] = request.user_id
    return body


def result_of(record: Record) -> dict[str, Any]:
    """``process_request``'s answer; ``RequestFailed`` unless the request completed."""
    if record.status is not RequestStatus.COMPLETED:
        raise RequestFailed(f"request {record.request_id} {record.status.value}: {record.error}")
    choices = record.output.get("choices") or [{}]
    return {
        "request_id": record.request_id,
        "text": choices[0].get("text", ""),
        "finish_reason": choices[0].get("finish_reason"),
        "usage": record.output.get("usage"),
        "instance": record.instance,
        "prefill_instance": record.prefill_instance or None,
        "latency_ms": record.latency_ms,
    }
