"""Traffic for the end-to-end scenarios: chat requests, steady traffic and long streams.

Shared by every backend (kind, the local stack) and by ``bench/autoscale.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

Obj = dict[str, Any]


class ScenarioFailed(AssertionError):
    """A scenario's expectation did not hold; the message says what and what was seen."""


@dataclass
class Reply:
    status: int
    text: str
    chunks: int = 0


async def sse_data(resp: aiohttp.ClientResponse) -> AsyncIterator[str]:
    """The payload of each ``data:`` line of a server-sent event stream."""
    async for raw in resp.content:
        line = raw.decode().strip()
        if line.startswith("data:"):
            yield line[5:].strip()


async def chat(
    session: aiohttp.ClientSession, base: str, model: str, prompt: str, stream: bool = False
) -> Reply:
    """One chat completion through the router; streaming replies are joined from SSE deltas."""
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 16}
    if stream:
        body["stream"] = True
    async with session.post(f"{base}/v1/chat/completions", json=body) as resp:
        if resp.status != 200 or not stream:
            payload = await resp.text()
            if resp.status != 200:
                return Reply(resp.status, payload)
            return Reply(200, json.loads(payload)["choices"][0]["message"]["content"])
        parts, chunks, done = [], 0, False
        async for data in sse_data(resp):
            if data == "[DONE]":
                done = True
                break
            chunks += 1
            for choice in json.loads(data).get("choices") or []:
                parts.append((choice.get("delta") or {}).get("content") or "")
        if not done:
            return Reply(599, "stream ended without data: [DONE]", chunks)
        return Reply(200, "".join(parts), chunks)


async def listed_models(session: aiohttp.ClientSession, base: str) -> set[str]:
    async with session.get(f"{base}/v1/models") as resp:
        resp.raise_for_status()
        return {m["id"] for m in (await resp.json())["data"]}


@dataclass
class Traffic:
    """Closed-loop load: ``workers`` clients each sending one request after another."""

    base: str
    model: str
    workers: int = 4
    statuses: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _worker(self, session: aiohttp.ClientSession, index: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                reply = await chat(
                    session, self.base, self.model, f"worker {index} req {n}", n % 2 == 0
                )
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                reply = Reply(598, f"{type(exc).__name__}: {exc}")
            self.statuses.append(reply.status)
            if reply.status != 200:
                self.errors.append(f"{reply.status}: {reply.text[:200]}")

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(*(self._worker(session, i) for i in range(self.workers)))

    def stop(self) -> None:
        self._stop.set()


@dataclass
class StreamOutcome:
    """How one long stream ended: HTTP status (598: connection error), whether ``[DONE]`` came,
    the first error (an SSE error event or an exception), chunks received and seconds taken."""

    status: int
    done: bool = False
    error: str = ""
    chunks: int = 0
    seconds: float = 0.0

    @property
    def finished(self) -> bool:
        return self.status == 200 and self.done and not self.error

    @property
    def cut(self) -> bool:
        """Started streaming, then ended without a clean ``[DONE]``."""
        return self.status == 200 and not self.finished


@dataclass
class LongStreams:
    """``count`` concurrent streaming chat requests, each long enough (``max_tokens``) to last
    tens of seconds: the load a lifecycle change must not hurt. ``all_streaming`` is set once
    every stream has received its first chunk, so a test can act while all are mid-stream."""

    base: str
    model: str
    count: int = 20
    max_tokens: int = 400
    outcomes: list[StreamOutcome] = field(default_factory=list)
    all_streaming: asyncio.Event = field(default_factory=asyncio.Event)
    _first_chunks: int = 0

    async def _one(self, session: aiohttp.ClientSession, index: int) -> StreamOutcome:
        body = {"model": self.model, "max_tokens": self.max_tokens, "stream": True,
                "stream_options": {"include_usage": True}, "ignore_eos": True,
                "messages": [{"role": "user", "content": f"long stream {index}"}]}  # fmt: skip
        start = time.monotonic()
        out = StreamOutcome(status=0)
        try:
            async with session.post(f"{self.base}/v1/chat/completions", json=body) as resp:
                out.status = resp.status
                if resp.status != 200:
                    out.error = (await resp.text())[:200]
                else:
                    await self._read(resp, out)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            out.status = out.status or 598
            out.error = out.error or f"{type(exc).__name__}: {exc}"
        out.seconds = time.monotonic() - start
        return out

    async def _read(self, resp: aiohttp.ClientResponse, out: StreamOutcome) -> None:
        async for data in sse_data(resp):
            if data == "[DONE]":
                out.done = True
                return
            if out.chunks == 0:
                self._first_chunks += 1
                if self._first_chunks == self.count:
                    self.all_streaming.set()
            out.chunks += 1
            event = json.loads(data)
            if "error" in event and not out.error:
                out.error = json.dumps(event["error"])[:200]

    async def run(self) -> list[StreamOutcome]:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            self.outcomes = list(
                await asyncio.gather(*(self._one(session, i) for i in range(self.count)))
            )
        return self.outcomes

    def summary(self) -> dict[str, int]:
        """The figures docs/fault-tolerance.md reports: started, finished, cut, failed."""
        started = sum(1 for o in self.outcomes if o.status == 200)
        finished = sum(1 for o in self.outcomes if o.finished)
        cut = sum(1 for o in self.outcomes if o.cut)
        return {"started": started, "finished": finished, "cut": cut,
                "failed": len(self.outcomes) - started}  # fmt: skip


def check_streams(streams: LongStreams, during: str, min_seconds: float = 0.0) -> None:
    """Every stream ended with ``[DONE]`` and no error event, and lasted at least
    ``min_seconds`` (so the test really held long streams across the change)."""
    bad = [o for o in streams.outcomes if not o.finished]
    if bad:
        raise ScenarioFailed(
            f"{len(bad)} of {len(streams.outcomes)} streams were hurt during {during} "
            f"({streams.summary()}); first: {bad[:3]}"
        )
    short = [o.seconds for o in streams.outcomes if o.seconds < min_seconds]
    if short:
        raise ScenarioFailed(
            f"{len(short)} streams lasted under {min_seconds:.0f}s ({min(short):.1f}s): the "
            f"test did not hold long streams across {during}; raise max_tokens"
        )


# --- scenarios --------------------------------------------------------------------------------
