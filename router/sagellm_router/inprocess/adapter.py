"""``LocalEngine``: an in-process engine behind the same ``post`` as an HTTP engine.

The proxy POSTs the OpenAI body it would send over HTTP; the adapter turns it into
``generate(prompt, SamplingParams, request_id)`` and answers with the bytes vLLM's server would
send (one JSON body, or SSE chunks as tokens arrive). Closing the answer before the engine
finished (client disconnect, ``cancel_request``, timeout) calls ``abort(request_id)``. The
adapter counts running requests and tokens; ``stats`` feeds the router's load signals the way a
``/metrics`` scrape does for HTTP engines.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from sagellm_core.tokens import TokenCounter
from sagellm_core.vllm_errors import SemanticError, check_lengths
from sagellm_router.inprocess import render
from sagellm_router.inprocess.engine import AsyncEngine, RequestOutputLike, vllm_sampling_params
from sagellm_router.stats.engine import EngineStats
from sagellm_router.upstream import UpstreamError
from sagellm_router.validation import CHAT, COMPLETIONS

log = logging.getLogger(__name__)


@dataclass
class LocalCounters:
    """What the adapter measured (exported like the engine's ``vllm:*`` counters)."""

    running: int = 0
    started: int = 0
    finished: int = 0
    aborted: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    generation_tokens: int = 0


@dataclass
class _Call:
    path: str
    rid: str
    model: str
    prompt: Any
    params: Any
    stream: bool
    include_usage: bool
    created: int = field(default_factory=lambda: int(time.time()))


class LocalEngine:
    """One in-process engine (``engine``: vLLM's AsyncLLM or anything with its shape)."""

    def __init__(
        self,
        instance_id: str,
        engine: AsyncEngine,
        model_name: str,
        make_sampling_params: Callable[..., Any] = vllm_sampling_params,
        clock: Callable[[], float] = time.monotonic,
        max_model_len: int | None = None,
    ) -> None:
        self.instance_id, self.engine, self.model_name = instance_id, engine, model_name
        self.max_model_len = max_model_len if max_model_len is not None else _max_len(engine)
        self._make_params = make_sampling_params
        self._clock = clock
        self._seq = itertools.count()
        self.counters = LocalCounters()

    def token_counter(self) -> TokenCounter | None:
        """The engine's own tokenizer as a ``TokenCounter`` (vLLM's ``get_tokenizer()``), or
        None when the engine has none to offer synchronously."""
        getter = getattr(self.engine, "get_tokenizer", None)
        try:
            tokenizer = getter() if getter is not None else None
        except Exception as exc:  # e.g. skip_tokenizer_init: the estimate counts instead
            log.debug("no tokenizer from the engine (%s); prompts are estimated", exc)
            return None
        encode = getattr(tokenizer, "encode", None)
        if encode is None:  # also an awaitable from an async get_tokenizer
            if inspect.iscoroutine(tokenizer):
                tokenizer.close()
            return None

        def count(text: str) -> int:
            return len(encode(text, add_special_tokens=False))

        return count

    def stats(self) -> EngineStats:
        running = float(self.counters.running)  # all of it sent by this router
        return EngineStats(running=running, own_in_flight=running, at=self._clock())

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> LocalResponse:
        """Start serving ``body`` (an OpenAI request for ``path``); errors come back as 4xx."""
        try:
            call = await self._prepare(path, orjson.loads(body), headers)
        except SemanticError as exc:
            return LocalResponse.error(400, str(exc), exc.param)
        except (render.BadRequest, ValueError, TypeError) as exc:
            return LocalResponse.error(400, str(exc))
        if call is None:
            return LocalResponse.error(404, f"{path} is not served in-process")
        return LocalResponse(call.stream, self._run(call))

    async def _prepare(
        self, path: str, body: dict[str, Any], headers: Mapping[str, str]
    ) -> _Call | None:
        if path not in (COMPLETIONS, CHAT):
            return None
        given = {k.lower(): v for k, v in headers.items()}.get("x-request-id") or "req"
        rid = f"{given}-{next(self._seq)}"  # unique inside the engine even across retries
        self._check_length(path, body)
        prompt = await self._chat_prompt(body) if path == CHAT else render.completion_prompt(body)
        params = self._make_params(**render.sampling_fields(path, body))
        options = body.get("stream_options") or {}
        return _Call(path, rid, str(body.get("model") or self.model_name), prompt, params,
                     body.get("stream") is True, bool(options.get("include_usage")))  # fmt: skip

    def _check_length(self, path: str, body: dict[str, Any]) -> None:
        """vLLM's HTTP server refuses ``max_tokens`` above the context length (400); so does
        the in-process executor, so both kinds of instance answer alike."""
        if self.max_model_len is None:
            return
        name = "max_completion_tokens" if path == CHAT and body.get(
            "max_completion_tokens") is not None else "max_tokens"  # fmt: skip
        limit = body.get(name)
        if isinstance(limit, int) and not isinstance(limit, bool):
            check_lengths(None, limit, name, self.max_model_len)

    async def _chat_prompt(self, body: dict[str, Any]) -> str:
        messages = body.get("messages") or []
        getter = getattr(self.engine, "get_tokenizer", None)
        if getter is not None:
            try:
                tokenizer = getter()
                if inspect.isawaitable(tokenizer):
                    tokenizer = await tokenizer
                text = tokenizer.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True
                )
                return str(text)
            except Exception as exc:  # no chat template: plain rendering, as documented
                log.debug("chat template unavailable (%s); using plain rendering", exc)
        return render.plain_chat(messages)

    async def _run(self, call: _Call) -> AsyncGenerator[bytes, None]:
        c = self.counters
        c.running += 1
        c.started += 1
        done, text, tokens, prompt_len, finish = False, "", 0, 0, None
        try:
            if call.stream and call.path == CHAT:
                yield render.chunk(call.path, call.rid, call.model, call.created, None, None,
                                   role=True)  # fmt: skip
            async for out in self._outputs(call):
                first = out.outputs[0]
                delta, text = first.text[len(text) :], first.text
                tokens, finish = len(first.token_ids), first.finish_reason
                prompt_len = len(out.prompt_token_ids or ())
                done = out.finished
                if call.stream and (delta or done):
                    yield render.chunk(call.path, call.rid, call.model, call.created, delta,
                                       finish if done else None)  # fmt: skip
            use = render.usage(prompt_len, tokens)
            c.prompt_tokens += prompt_len
            c.generation_tokens += tokens
            if not call.stream:
                yield render.whole(call.path, call.rid, call.model, call.created, text, finish, use)
            else:
                if call.include_usage:
                    yield render.chunk(call.path, call.rid, call.model, call.created, None,
                                       None, use=use)  # fmt: skip
                yield render.DONE
            c.finished += 1
        finally:
            c.running -= 1
            if not done:
                c.aborted += 1
                await self.engine.abort(call.rid)
                log.info("in-process request aborted", extra={"request_id": call.rid})

    async def _outputs(self, call: _Call) -> AsyncGenerator[RequestOutputLike, None]:
        try:
            async for out in self.engine.generate(call.prompt, call.params, call.rid):
                yield out
        except (GeneratorExit, KeyboardInterrupt):
            raise
        except Exception as exc:
            self.counters.failed += 1
            raise UpstreamError("engine_error", f"{type(exc).__name__}: {exc}") from exc


class LocalResponse:
    """The proxy's view of an in-process answer (``UpstreamResponse``)."""

    def __init__(self, stream: bool, body: AsyncGenerator[bytes, None], status: int = 200) -> None:
        self.status = status
        kind = "text/event-stream" if stream else "application/json"
        self.headers = {"content-type": kind}
        self._body = body

    @classmethod
    def error(cls, status: int, message: str, param: str | None = None) -> LocalResponse:
        async def body() -> AsyncGenerator[bytes, None]:
            yield render.error_body(status, message, param)

        return cls(False, body(), status)

    @property
    def content_type(self) -> str:
        return self.headers["content-type"]

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self._body])

    def chunks(self) -> AsyncGenerator[bytes, None]:
        return self._body

    def batches(self) -> AsyncGenerator[bytes, None]:
        return self._body  # in-process pieces are already whole renders

    def close(self) -> None:
        return None  # the proxy closes the chunk generator; that aborts unfinished work


def _max_len(engine: object) -> int | None:
    """vLLM's ``AsyncLLM.model_config.max_model_len``, when the engine has one."""
    value = getattr(getattr(engine, "model_config", None), "max_model_len", None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None
