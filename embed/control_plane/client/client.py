"""``UnifiedInferenceClient``: one async API over a router URL or an embedded manager.

``create(base_url=...)`` talks HTTP to a router (or any OpenAI-compatible server);
``create(manager=...)`` sends the same requests through an embedded ``ControlPlaneManager``.
Connect failures, 429 and 503 are retried ``retries`` times with exponential backoff (a
``Retry-After`` header is honoured, up to ``max_backoff_s``); a stream is only retried before
its first chunk. Every other failure raises ``ClientError`` with the status and the server's
message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from control_plane.client.backends import (
    Answer,
    Backend,
    ConnectFailed,
    HttpBackend,
    ManagerBackend,
)
from control_plane.client.types import Chunk as Chunk
from control_plane.client.types import ClientError, Completion, Embeddings, Usage

if TYPE_CHECKING:
    from control_plane.manager import ControlPlaneManager

CHAT, COMPLETIONS, EMBEDDINGS = "/v1/chat/completions", "/v1/completions", "/v1/embeddings"
RETRY_STATUSES = frozenset({429, 503})
Sleep = Callable[[float], Awaitable[None]]


class UnifiedInferenceClient:
    def __init__(
        self,
        backend: Backend,
        *,
        model: str | None = None,
        retries: int = 2,
        backoff_s: float = 0.1,
        max_backoff_s: float = 10.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.backend, self.model = backend, model
        self.retries, self.backoff_s, self.max_backoff_s = retries, backoff_s, max_backoff_s
        self._sleep = sleep

    @classmethod
    def create(
        cls,
        base_url: str | None = None,
        *,
        manager: ControlPlaneManager | None = None,
        api_key: str | None = None,
        retries: int = 2,
        timeout: float = 300.0,
        model: str | None = None,
        backoff_s: float = 0.1,
    ) -> UnifiedInferenceClient:
        """A client for a router at ``base_url`` (``http://host:port`` or ``.../v1``) or for an
        embedded ``manager`` (already started); exactly one of the two."""
        if (base_url is None) == (manager is None):
            raise ValueError("give exactly one of base_url=... or manager=...")
        backend: Backend = (
            HttpBackend(base_url, api_key, timeout) if base_url else ManagerBackend(manager)  # type: ignore[arg-type]
        )
        return cls(backend, model=model, retries=retries, backoff_s=backoff_s)

    async def close(self) -> None:
        await self.backend.close()

    async def __aenter__(self) -> UnifiedInferenceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- calls -------------------------------------------------------------------------------
    async def chat(
        self, messages: Sequence[Mapping[str, Any]], model: str | None = None, **params: Any
    ) -> Completion:
        body = self._body(model, params, messages=list(messages))
        answer = await self._send(CHAT, body, stream=False)
        return _completion(answer, chat=True)

    async def complete(
        self, prompt: str | Sequence[int], model: str | None = None, **params: Any
    ) -> Completion:
        body = self._body(model, params, prompt=prompt)
        return _completion(await self._send(COMPLETIONS, body, stream=False), chat=False)

    async def embed(
        self, texts: str | Sequence[str], model: str | None = None, **params: Any
    ) -> Embeddings:
        inputs = texts if isinstance(texts, str) else list(texts)
        answer = await self._send(EMBEDDINGS, self._body(model, params, input=inputs), False)
        data = _json(answer)
        rows = sorted(data.get("data") or [], key=lambda d: d.get("index", 0))
        return Embeddings(
            vectors=[list(row["embedding"]) for row in rows], usage=Usage.of(data.get("usage")),
            model=str(data.get("model", "")),
            request_id=answer.headers.get("x-request-id"),
            instance=answer.headers.get("x-sagellm-instance"),
        )  # fmt: skip

    def stream_chat(
        self, messages: Sequence[Mapping[str, Any]], model: str | None = None, **params: Any
    ) -> AsyncIterator[Chunk]:
        body = self._body(model, params, messages=list(messages))
        return self._stream(CHAT, body, chat=True)

    def stream_complete(
        self, prompt: str | Sequence[int], model: str | None = None, **params: Any
    ) -> AsyncIterator[Chunk]:
        return self._stream(COMPLETIONS, self._body(model, params, prompt=prompt), chat=False)

    # -- plumbing ----------------------------------------------------------------------------
    def _body(self, model: str | None, params: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
        chosen = model or self.model
        if not chosen:
            raise ValueError("no model: pass model=... or create the client with model=...")
        return {"model": chosen, **fields, **params}

    async def _stream(self, path: str, body: dict[str, Any], chat: bool) -> AsyncIterator[Chunk]:
        body = {**body, "stream": True}
        answer = await self._send(path, body, stream=True)
        assert answer.events is not None
        rid, instance = answer.headers.get("x-request-id"), answer.headers.get("x-sagellm-instance")
        async for data in answer.events:
            event = orjson.loads(data)
            if "error" in event:
                raise _error(int(event["error"].get("code") or 502), event, rid)
            choices = event.get("choices") or []
            first = choices[0] if choices else {}
            text = (first.get("delta") or {}).get("content") if chat else first.get("text")
            yield Chunk(text or "", first.get("finish_reason"), Usage.of(event.get("usage")),
                        rid, instance)  # fmt: skip

    async def _send(self, path: str, body: dict[str, Any], stream: bool) -> Answer:
        attempt = 0
        while True:
            try:
                answer = await self.backend.send(path, body, stream)
            except ConnectFailed as exc:
                if attempt >= self.retries:
                    raise ClientError(0, f"cannot reach the server: {exc}") from exc
                await self._sleep(self._delay(attempt, None))
                attempt += 1
                continue
            if answer.status == 200 and (answer.events is not None or not stream):
                return answer
            if answer.status in RETRY_STATUSES and attempt < self.retries:
                await self._sleep(self._delay(attempt, answer.headers.get("retry-after")))
                attempt += 1
                continue
            raise _error(
                answer.status, _maybe_json(answer.body), answer.headers.get("x-request-id")
            )

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        delay = float(self.backoff_s * 2**attempt)
        if retry_after:
            with contextlib.suppress(ValueError):
                delay = max(delay, float(retry_after))
        return min(delay, self.max_backoff_s)


def _json(answer: Answer) -> dict[str, Any]:
    data = _maybe_json(answer.body)
    if not isinstance(data, dict):
        raise ClientError(answer.status, "the server's answer is not a JSON object")
    return data


def _maybe_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace")


def _error(status: int, payload: Any, request_id: str | None) -> ClientError:
    """OpenAI ``{"error": {...}}``, FastAPI ``{"detail": ...}`` or text -> ``ClientError``."""
    err = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(err, dict):
        return ClientError(status, str(err.get("message")), type=err.get("type"),
                           param=err.get("param"), request_id=request_id)  # fmt: skip
    if isinstance(payload, dict) and "detail" in payload:
        return ClientError(status, str(payload["detail"]), request_id=request_id)
    return ClientError(status, str(payload)[:500] or "request failed", request_id=request_id)


def _completion(answer: Answer, chat: bool) -> Completion:
    data = _json(answer)
    choice = (data.get("choices") or [{}])[0]
    text = (choice.get("message") or {}).get("content") if chat else choice.get("text")
    return Completion(
        text=text or "", finish_reason=choice.get("finish_reason"),
        usage=Usage.of(data.get("usage")), model=str(data.get("model", "")),
        request_id=answer.headers.get("x-request-id"),
        instance=answer.headers.get("x-sagellm-instance"),
        prefill_instance=answer.headers.get("x-sagellm-prefill-instance"), raw=data,
    )  # fmt: skip
