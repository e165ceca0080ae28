"""The load generator: an asyncio aiohttp client that plays sessions and times every request.

Runs in its own process (``python -m sagellm_router.bench.loadgen SPEC.json OUT.json``) so its
CPU use never shares an event loop with the harness. Every request is a streaming chat completion
(``stream_options.include_usage``, ``ignore_eos``); per request it records the time to the first
content token (TTFT), the end-to-end latency, output tokens (from the usage chunk) and the gaps
between content chunks (ITL, pooled over the run).

Modes:
* ``open``: each session starts at its ``start_s`` (Poisson arrivals) and sends its turns in
  order, ``think_s`` apart; the run ends when every session is done or ``drain_timeout_s``
  after the last arrival (unfinished requests count as errors).
* ``closed``: ``concurrency`` workers send the sessions' turns back to back, ignoring start and
  think times, for ``duration_s``: a saturation probe of capacity. Worker ``i`` always uses
  target ``i mod len(targets)``, so every engine of a direct probe holds the same number of
  requests (per-request round robin lets long requests pile up on some engines while others
  idle; with a whole-span count it under-measured the routing fleet 2.5x).

In ``open`` mode several ``targets`` are used in client-side round robin (``direct`` runs
without a router).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp


@dataclass
class Record:
    sid: int
    turn: int
    klass: str
    start: float
    ttft: float | None = None
    e2e: float | None = None
    out_tokens: int = 0
    prompt_tokens: int = 0
    error: str | None = None

    def row(self) -> list[Any]:
        return [self.sid, self.turn, self.klass, round(self.start, 6), _r(self.ttft),
                _r(self.e2e), self.out_tokens, self.prompt_tokens, self.error]  # fmt: skip


RECORD_FIELDS = ["sid", "turn", "klass", "start", "ttft", "e2e", "out_tokens", "prompt_tokens",
                 "error"]  # fmt: skip


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


@dataclass
class Client:
    http: aiohttp.ClientSession
    targets: Iterator[str]
    model: str
    t0: float
    itl: list[float] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)

    async def chat(
        self,
        session: dict[str, Any],
        turn: int,
        messages: list[dict[str, str]],
        target: str | None = None,
    ) -> str:
        """Send one streaming request (to ``target``, else the next target); return the reply
        text ("" on error)."""
        spec = session["turns"][turn]
        rec = Record(session["sid"], turn, session["klass"], time.perf_counter() - self.t0)
        self.records.append(rec)
        body = {"model": self.model, "messages": messages, "max_tokens": spec["max_tokens"],
                "stream": True, "stream_options": {"include_usage": True},
                "ignore_eos": True}  # fmt: skip
        start = time.perf_counter()
        parts: list[str] = []
        try:
            async with self.http.post(
                (target or next(self.targets)) + "/v1/chat/completions",
                json=body,
                headers=session["headers"],
            ) as resp:
                if resp.status != 200:
                    rec.error = f"HTTP {resp.status}"
                    await resp.read()
                    return ""
                await self._consume(resp, rec, start, parts)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            rec.error = type(exc).__name__
            return ""
        rec.e2e = time.perf_counter() - start
        return "".join(parts)

    async def _consume(
        self, resp: aiohttp.ClientResponse, rec: Record, start: float, parts: list[str]
    ) -> None:
        last: float | None = None
        async for raw in resp.content:
            if not raw.startswith(b"data: ") or raw.startswith(b"data: [DONE]"):
                continue
            data = json.loads(raw[6:])
            usage = data.get("usage")
            if usage:
                rec.out_tokens = int(usage.get("completion_tokens", 0))
                rec.prompt_tokens = int(usage.get("prompt_tokens", 0))
            for choice in data.get("choices") or ():
                text = (choice.get("delta") or {}).get("content")
                if text:
                    now = time.perf_counter()
                    if last is None:
                        rec.ttft = now - start
                    else:
                        self.itl.append(now - last)
                    last = now
                    parts.append(text)
        if rec.ttft is None:
            rec.error = "no tokens"


async def play(
    client: Client,
    session: dict[str, Any],
    think: bool,
    deadline: float = math.inf,
    target: str | None = None,
) -> None:
    messages = [{"role": "system", "content": session["system"]}]
    for turn, spec in enumerate(session["turns"]):
        if time.perf_counter() >= deadline:
            return
        if turn and think and session["think_s"] > 0:
            await asyncio.sleep(session["think_s"])
        messages.append({"role": "user", "content": spec["user"]})
        reply = await client.chat(session, turn, messages, target)
        messages.append({"role": "assistant", "content": reply})


async def run_open(client: Client, sessions: list[dict[str, Any]], drain_timeout_s: float) -> None:
    async def delayed(session: dict[str, Any]) -> None:
        await asyncio.sleep(max(0.0, client.t0 + session["start_s"] - time.perf_counter()))
        await play(client, session, think=True)

    last_start = max((s["start_s"] for s in sessions), default=0.0)
    tasks = [asyncio.create_task(delayed(s)) for s in sessions]
    _, pending = await asyncio.wait(tasks, timeout=last_start + drain_timeout_s)
    for task in pending:
        task.cancel()
    for rec in client.records:
        if rec.e2e is None and rec.error is None:
            rec.error = "timeout"


async def run_closed(
    client: Client,
    sessions: list[dict[str, Any]],
    concurrency: int,
    duration_s: float,
    targets: list[str],
) -> None:
    feed = itertools.cycle(sessions)
    deadline = client.t0 + duration_s

    async def worker(target: str) -> None:
        while time.perf_counter() < deadline:
            await play(client, next(feed), think=False, deadline=deadline, target=target)

    workers = [asyncio.create_task(worker(targets[i % len(targets)])) for i in range(concurrency)]
    _, pending = await asyncio.wait(workers, timeout=duration_s + 30.0)
    for task in pending:
        task.cancel()


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Play ``spec`` (see module docstring); returns records and pooled ITL samples."""
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=spec.get("read_timeout_s", 120.0))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        client = Client(http, itertools.cycle(spec["targets"]), spec["model"], time.perf_counter())
        if spec.get("mode", "open") == "closed":
            await run_closed(client, spec["sessions"], spec["concurrency"], spec["duration_s"],
                             list(spec["targets"]))  # fmt: skip
        else:
            await run_open(client, spec["sessions"], spec.get("drain_timeout_s", 60.0))
        elapsed = time.perf_counter() - client.t0
    return {"fields": RECORD_FIELDS, "records": [r.row() for r in client.records],
            "itl": [round(x, 6) for x in client.itl], "elapsed_s": elapsed}  # fmt: skip


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m sagellm_router.bench.loadgen SPEC.json OUT.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    with contextlib.suppress(KeyboardInterrupt):
        result = runner(run(spec))
        Path(argv[1]).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
