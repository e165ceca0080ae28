"""``UnifiedInferenceClient``: one API, sync or async, over a router URL or an embedded manager.

``create(base_url=...)`` talks HTTP to a router (or any OpenAI-compatible server);
``create(manager=...)`` sends the same requests through an embedded ``ControlPlaneManager``;
``create()`` reads ``$SAGELLM_BASE_URL``, else uses ``http://localhost:8080``.
Connect failures, 429 and 503 are retried ``retries`` times with exponential backoff (a
``Retry-After`` header is honoured, up to ``max_backoff_s``); a stream is only retried before
its first chunk. Every other failure raises ``ClientError`` with the status and the server's
message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
    Sequence,
)
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from control_plane.client.backends import (
    Answer,
    Backend,
    ConnectFailed,
    HttpBackend,
    ManagerBackend,
)
from control_plane.client.runner import LoopThread, in_event_loop
from control_plane.client.types import Chunk as Chunk
from control_plane.client.types import ClientError, Completion, Embeddings, Usage

if TYPE_CHECKING:
    from control_plane.manager import ControlPlaneManager

CHAT, COMPLETIONS, EMBEDDINGS = "/v1/chat/completions", "/v1/completions", "/v1/embeddings"
RETRY_STATUSES = frozenset({429, 503})
Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


BASE_URL_ENV, MODEL_ENV, EMBEDDING_MODEL_ENV = (
    "SAGELLM_BASE_URL", "SAGELLM_MODEL", "SAGELLM_EMBEDDING_MODEL",
)  # fmt: skip
#: Where ``create()`` without arguments looks: ``$SAGELLM_BASE_URL``, else ``sagellm up``'s router.
DEFAULT_BASE_URL = "http://localhost:8080"


class UnifiedInferenceClient:
    """Chat, completions, embeddings and streams, sync or async.

    Called from async code, every method returns an awaitable (``await client.chat(...)``,
    ``async for chunk in client.stream_chat(...)``); called from plain code, it blocks and
    returns the result (``client.chat(...)``, ``for chunk in client.stream_chat(...)``) on
    the client's own event-loop thread. A client keeps the mode of its first call.
    A manager-backed client is async only (the manager lives on your loop).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        model: str | None = None,
        embedding_model: str | None = None,
        retries: int = 2,
        backoff_s: float = 0.1,
        max_backoff_s: float = 10.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.backend, self.model, self.embedding_model = backend, model, embedding_model
        self.retries, self.backoff_s, self.max_backoff_s = retries, backoff_s, max_backoff_s
        self._sleep = sleep
        self._sync: LoopThread | None = None
        self._mode: str | None = None

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
        embedding_model: str | None = None,
        backoff_s: float = 0.1,
    ) -> UnifiedInferenceClient:
        """A client for a router at ``base_url`` (``http://host:port`` or ``.../v1``) or for an
        embedded, started ``manager`` — not both. With neither: ``$SAGELLM_BASE_URL``, else
        ``http://localhost:8080``. ``model``/``embedding_model`` default to
        ``$SAGELLM_MODEL``/``$SAGELLM_EMBEDDING_MODEL``, else the server's only model."""
        if base_url is not None and manager is not None:
            raise ValueError("give base_url=... or manager=..., not both")
        backend: Backend
        if manager is not None:
            backend = ManagerBackend(manager)
        else:
            url = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
            backend = HttpBackend(url, api_key, timeout)
        return cls(
            backend, retries=retries, backoff_s=backoff_s,
            model=model or os.environ.get(MODEL_ENV) or None,
            embedding_model=embedding_model or os.environ.get(EMBEDDING_MODEL_ENV) or None,
        )  # fmt: skip

    # -- sync or async -----------------------------------------------------------------------
    def _call(self, coro: Coroutine[Any, Any, T]) -> Any:
        """``coro`` itself inside an event loop, else its result (run on the client's loop)."""
        if self._enter("async" if in_event_loop() else "sync", coro) == "async":
            return coro
        assert self._sync is not None
        return self._sync.run(coro)

    def _enter(self, mode: str, coro: Coroutine[Any, Any, Any] | None = None) -> str:
        if self._mode is None:
            if mode == "sync" and isinstance(self.backend, ManagerBackend):
                if coro is not None:
                    coro.close()
                raise RuntimeError(
                    "a manager-backed client is async: call it as `await client.chat(...)` "
                    "inside the manager's event loop"
                )
            self._mode = mode
            if mode == "sync":
                self._sync = LoopThread()
        if mode != self._mode:
            if coro is not None:
                coro.close()
            raise RuntimeError(
                f"this client was first used {self._mode}hronously; create another client "
                f"for {mode}hronous use"
            )
        return mode

    def close(self) -> Any:
        if self._mode == "sync":
            assert self._sync is not None
            self._sync.run(self.backend.close())
            self._sync.stop()
            self._sync, self._mode = None, None
            return None
        return self.backend.close()

    async def __aenter__(self) -> UnifiedInferenceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.backend.close()

    def __enter__(self) -> UnifiedInferenceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calls -------------------------------------------------------------------------------
    def chat(
        self, messages: Sequence[Mapping[str, Any]], model: str | None = None, **params: Any
    ) -> Any:
        """A ``Completion`` for ``messages`` (awaitable inside an event loop)."""
        return self._call(self._chat(messages, model, params))

    def complete(self, prompt: str | Sequence[int], model: str | None = None, **params: Any) -> Any:
        """A ``Completion`` continuing ``prompt`` (awaitable inside an event loop)."""
        return self._call(self._complete(prompt, model, params))

    def embed(self, texts: str | Sequence[str], model: str | None = None, **params: Any) -> Any:
        """``Embeddings`` of ``texts`` (awaitable inside an event loop)."""
        return self._call(self._embed(texts, model, params))

    def models(self) -> Any:
        """The model ids the server lists (awaitable inside an event loop)."""
        return self._call(self.backend.models())

    def stream_chat(
        self, messages: Sequence[Mapping[str, Any]], model: str | None = None, **params: Any
    ) -> Any:
        """``Chunk``s of a chat answer: an async iterator in async code, else an iterator."""
        return self._iterate(self._stream_of(CHAT, model, params, messages=list(messages)))

    def stream_complete(
        self, prompt: str | Sequence[int], model: str | None = None, **params: Any
    ) -> Any:
        """``Chunk``s of a completion: an async iterator in async code, else an iterator."""
        return self._iterate(self._stream_of(COMPLETIONS, model, params, prompt=prompt))

    def _iterate(self, chunks: AsyncIterator[Chunk]) -> AsyncIterator[Chunk] | Iterator[Chunk]:
        if self._enter("async" if in_event_loop() else "sync") == "async":
            return chunks
        assert self._sync is not None
        return self._sync.iterate(chunks)

    async def _chat(
        self, messages: Sequence[Mapping[str, Any]], model: str | None, params: Mapping[str, Any]
    ) -> Completion:
        body = self._body(await self._model(model, CHAT), params, messages=list(messages))
        return _completion(await self._send(CHAT, body, stream=False), chat=True)

    async def _complete(
        self, prompt: str | Sequence[int], model: str | None, params: Mapping[str, Any]
    ) -> Completion:
        chosen = await self._model(model, COMPLETIONS)
        body = self._body(chosen, params, prompt=prompt)
        return _completion(await self._send(COMPLETIONS, body, stream=False), chat=False)

    async def _embed(
        self, texts: str | Sequence[str], model: str | None, params: Mapping[str, Any]
    ) -> Embeddings:
        inputs = texts if isinstance(texts, str) else list(texts)
        chosen = await self._model(model, EMBEDDINGS)
        answer = await self._send(EMBEDDINGS, self._body(chosen, params, input=inputs),
                                  False)  # fmt: skip
        data = _json(answer)
        rows = sorted(data.get("data") or [], key=lambda d: d.get("index", 0))
        return Embeddings(
            vectors=[list(row["embedding"]) for row in rows], usage=Usage.of(data.get("usage")),
            model=str(data.get("model", "")),
            request_id=answer.headers.get("x-request-id"),
            instance=answer.headers.get("x-sagellm-instance"),
        )  # fmt: skip

    async def _stream_of(
        self, path: str, model: str | None, params: Mapping[str, Any], **fields: Any
    ) -> AsyncIterator[Chunk]:
        body = self._body(await self._model(model, path), params, **fields)
        async for chunk in self._stream(path, body, chat=path == CHAT):
            yield chunk

    async def _model(self, given: str | None, path: str) -> str:
        """``given``, else the client's default for the route, else the server's only model."""
        chosen = given or (self.embedding_model if path == EMBEDDINGS else self.model)
        if chosen:
            return chosen
        try:
            served = await self.backend.models()
        except ConnectFailed as exc:
            raise ClientError(0, f"cannot reach the server: {exc}") from exc
        if len(served) == 1:
            return served[0]
        env = EMBEDDING_MODEL_ENV if path == EMBEDDINGS else MODEL_ENV
        raise ClientError(
            0, f"no model given and the server lists {served or 'none'}: pass model=..., "
            f"create the client with model=... or set ${env}",
        )  # fmt: skip

    # -- plumbing ----------------------------------------------------------------------------
    @staticmethod
    def _body(model: str, params: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
        return {"model": model, **fields, **params}

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
