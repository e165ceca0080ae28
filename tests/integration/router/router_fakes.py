"""A tiny in-loop vLLM-like engine for router tests (the real simulator is used where it matters).

Knobs on ``FakeEngine``: ``fail_status`` (answer every inference with this 5xx), ``chunks`` and
``chunk_delay`` (streaming shape), ``die_after`` (abort the connection after N stream chunks),
``stall_after`` (go silent after N stream chunks, connection open), ``hang`` (accept inference
requests and never answer; ``/health`` still 200), ``hold`` (an Event non-stream requests wait
on), and ``seen`` (request ids received). ``/tokenize`` counts whitespace-separated words.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


def router_yaml(pools: list[dict[str, Any]], **sections: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "discovery": {"type": "static", "poll_interval_s": 0.05, "pools": pools},
        "scrape": {"enabled": False},
        "retries": {"max_attempts": 3, "backoff_initial_s": 0.0},
        "health": {"failure_threshold": 2, "probe_interval_s": 0.05},
    }
    doc.update(sections)
    return doc


def pool(
    name: str, model: str, urls: list[str], routing: str = "round_robin", **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "model": model,
        "routing": routing,
        "endpoints": [{"url": u, "instance": f"{name}-{i}", **extra} for i, u in enumerate(urls)],
    }


@dataclass
class FakeEngine:
    name: str
    model: str = "m"
    fail_status: int | None = None
    chunks: int = 3
    chunk_delay: float = 0.0
    die_after: int | None = None
    stall_after: int | None = None
    hang: bool = False
    hold: asyncio.Event | None = None
    waiting: float = 0.0
    running: float = 0.0
    kv: float = 0.0
    seen: list[str] = field(default_factory=list)
    bodies: list[dict[str, object]] = field(default_factory=list)
    cancelled: int = 0
    scrapes: int = 0
    server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/completions", self.complete)
        app.router.add_post("/v1/chat/completions", self.complete)
        app.router.add_get("/health", self.health)
        app.router.add_post("/tokenize", self.tokenize)
        app.router.add_get("/metrics", self.metrics)
        return app

    async def start(self) -> FakeEngine:
        self.server = TestServer(self.app(), host="127.0.0.1")
        await self.server.start_server()
        return self

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="")

    async def tokenize(self, request: web.Request) -> web.Response:
        body = await request.json()
        text = body.get("prompt") or " ".join(str(m["content"]) for m in body["messages"])
        return web.json_response({"count": len(text.split()), "max_model_len": 4096})

    async def metrics(self, request: web.Request) -> web.Response:
        self.scrapes += 1
        labels = f'{{engine="0",model_name="{self.model}"}}'
        values = {
            "vllm:num_requests_running": self.running,
            "vllm:num_requests_waiting": self.waiting,
            "vllm:kv_cache_usage_perc": self.kv,
        }
        text = "".join(f"# TYPE {k} gauge\n{k}{labels} {v}\n" for k, v in values.items())
        return web.Response(text=text, content_type="text/plain")

    async def complete(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.seen.append(request.headers.get("X-Request-Id", ""))
        self.bodies.append(body)
        if self.hang:
            await asyncio.Event().wait()
        if self.fail_status:
            return web.json_response(
                {
                    "error": {
                        "message": "boom",
                        "type": "InternalServerError",
                        "param": None,
                        "code": self.fail_status,
                    }
                },
                status=self.fail_status,
            )
        usage = {
            "prompt_tokens": 5,
            "completion_tokens": self.chunks,
            "total_tokens": 5 + self.chunks,
        }
        if not body.get("stream"):
            if self.hold is not None:
                try:
                    await self.hold.wait()
                except asyncio.CancelledError:
                    self.cancelled += 1
                    raise
            return web.json_response(
                {
                    "id": "cmpl-1",
                    "object": "text_completion",
                    "model": body["model"],
                    "choices": [{"index": 0, "text": self.name, "finish_reason": "stop"}],
                    "usage": usage,
                }
            )
        return await self._stream(request, body, usage)

    async def _stream(self, request: web.Request, body: dict, usage: dict) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        chat = request.path.endswith("/chat/completions")
        try:
            for i in range(self.chunks):
                if self.die_after is not None and i >= self.die_after:
                    assert request.transport is not None
                    request.transport.abort()
                    return resp
                if self.stall_after is not None and i >= self.stall_after:
                    await asyncio.Event().wait()
                text = f" {self.name}-{i}"
                choice = {"delta": {"content": text}} if chat else {"text": text}
                event = {
                    "id": "c",
                    "object": "chat.completion.chunk" if chat else "text_completion",
                    "model": body["model"],
                    "choices": [{"index": 0, **choice, "finish_reason": None}],
                    "usage": None,
                }
                await resp.write(b"data: " + json.dumps(event).encode() + b"\n\n")
                await asyncio.sleep(self.chunk_delay)
        except (asyncio.CancelledError, ConnectionResetError):
            self.cancelled += 1
            raise
        final = {
            "id": "c",
            "object": "text_completion",
            "model": body["model"],
            "choices": [],
            "usage": usage,
        }
        await resp.write(b"data: " + json.dumps(final).encode() + b"\n\ndata: [DONE]\n\n")
        return resp
