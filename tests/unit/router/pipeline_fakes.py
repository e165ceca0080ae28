"""A router core driven in-process: ``build_state`` + ``pipeline.handle`` against a scripted
upstream (no sockets), for tests of what the pipeline decides and books."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from sagellm_router.config import PoolSettings, RouterSettings
from sagellm_router.downstream import Collector
from sagellm_router.pipeline import Job, handle
from sagellm_router.state import RouterState, build_state
from sagellm_router.upstream import UpstreamError
from sagellm_router.validation import parse_body

CHOICE = {"index": 0, "text": "ok", "finish_reason": "stop"}
COMPLETION = orjson.dumps({"id": "c", "object": "text_completion", "choices": [CHOICE]})
PARAMS = orjson.dumps({"choices": [], "kv_transfer_params": {"remote_engine_id": "e"}})


@dataclass
class Answer:
    status: int = 200
    body: bytes = COMPLETION
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})

    @property
    def content_type(self) -> str:
        return self.headers["content-type"]

    async def read(self) -> bytes:
        return self.body

    async def _once(self) -> AsyncGenerator[bytes, None]:
        yield self.body

    def chunks(self) -> AsyncGenerator[bytes, None]:
        return self._once()

    def batches(self) -> AsyncGenerator[bytes, None]:
        return self._once()

    def close(self) -> None:
        return None


@dataclass
class ScriptedUpstream:
    """Answers per endpoint URL: ``script[url]`` is an ``Answer``, an ``UpstreamError`` to raise
    or an ``asyncio.Event`` to wait for before answering 200. ``posts`` records every call;
    ``during`` runs while a request is at the upstream (to look at the router's books)."""

    script: dict[str, Any] = field(default_factory=dict)
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    during: Callable[[str], None] | None = None

    async def post(self, base: str, path: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        self.posts.append((base, orjson.loads(body)))
        if self.during is not None:
            self.during(base)
        step = self.script.get(base, Answer())
        if isinstance(step, UpstreamError):
            raise step
        if isinstance(step, asyncio.Event):
            await step.wait()
            return Answer()
        assert isinstance(step, Answer)
        return step

    async def close(self) -> None:
        return None


def state_with(*pools: dict[str, Any], **settings: Any) -> RouterState:
    state = build_state(RouterSettings(**settings), clock=lambda: 0.0, seed=1)
    state.apply_pools([PoolSettings.model_validate(p).snapshot(i) for i, p in enumerate(pools)])
    return state


def pd_pool(threshold: int = 100, **scheduling: Any) -> dict[str, Any]:
    return {"name": "pd", "model": "m",
            "scheduling": {"pdThresholdInputTokens": threshold, **scheduling},
            "endpoints": [{"url": "http://p", "role": "Prefill", "instance": "P"},
                          {"url": "http://d", "role": "Decode", "instance": "D"}]}  # fmt: skip


async def complete(
    state: RouterState, upstream: ScriptedUpstream, prompt: str, **body: Any
) -> Collector:
    raw = orjson.dumps({"model": "m", "prompt": prompt, "max_tokens": 4, **body})
    job = Job(parse_body(raw, "/v1/completions"), raw, {})
    down = Collector()
    await handle(state, upstream, job, down)
    return down
