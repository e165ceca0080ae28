"""Small builders shared by the scheduling tests."""

from __future__ import annotations

from sagellm_core.api.common import Priority
from sagellm_core.scheduling.metadata import PromptTokens, RequestMetadata
from sagellm_core.scheduling.view import QueueItem


def meta(
    rid: str,
    *,
    user: str = "u",
    priority: Priority = Priority.NORMAL,
    at: float = 0.0,
    ttft_ms: float | None = None,
    deadline_ms: float | None = None,
    prompt: int = 100,
    max_tokens: int | None = 100,
    budget: float | None = None,
    hint: int | None = None,
) -> RequestMetadata:
    return RequestMetadata(
        request_id=rid,
        user_id=user,
        priority=priority,
        arrival_s=at,
        slo_ttft_ms=ttft_ms,
        slo_deadline_ms=deadline_ms,
        prompt=PromptTokens(prompt),
        max_tokens=max_tokens,
        cost_budget=budget,
        parallelism_hint=hint,
    )


def item(rid: str, seq: int, **kw: object) -> QueueItem:
    m = meta(rid, **kw)  # type: ignore[arg-type]
    return QueueItem(m, seq, m.arrival_s)
