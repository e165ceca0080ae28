"""The demo workload of ``sagellm up``: streamed completions with shared prefixes, measured.

``run_demo`` does the I/O; ``summarize`` and ``render`` are pure.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aiohttp
import orjson


@dataclass(frozen=True)
class Outcome:
    """One demo request as the client saw it."""

    model: str
    instance: str
    status: int
    prefill: str
    ttft_s: float | None
    e2e_s: float
    completion_tokens: int


@dataclass
class Summary:
    requests: int
    failed: int
    wall_s: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    e2e_p50_ms: float
    tokens_per_s: float
    per_instance: dict[str, int] = field(default_factory=dict)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarize(outcomes: Sequence[Outcome], wall_s: float) -> Summary:
    ok = [o for o in outcomes if o.status == 200]
    ttfts = [o.ttft_s for o in ok if o.ttft_s is not None]
    return Summary(
        requests=len(outcomes),
        failed=len(outcomes) - len(ok),
        wall_s=wall_s,
        ttft_p50_ms=percentile(ttfts, 0.5) * 1000,
        ttft_p99_ms=percentile(ttfts, 0.99) * 1000,
        e2e_p50_ms=percentile([o.e2e_s for o in ok], 0.5) * 1000,
        tokens_per_s=sum(o.completion_tokens for o in ok) / wall_s if wall_s > 0 else 0.0,
        per_instance=dict(sorted(Counter(_route(o) for o in ok).items())),
    )


def _route(o: Outcome) -> str:
    """``model @ instance``, or ``model @ prefill -> decode`` for a prefill-then-decode request."""
    return f"{o.model} @ {o.prefill} -> {o.instance}" if o.prefill else f"{o.model} @ {o.instance}"


def render(summary: Summary) -> str:
    lines = [
        f"requests       {summary.requests} ({summary.failed} failed) in {summary.wall_s:.2f}s",
        f"TTFT p50/p99   {summary.ttft_p50_ms:.1f} / {summary.ttft_p99_ms:.1f} ms",
        f"e2e p50        {summary.e2e_p50_ms:.1f} ms",
        f"output tokens  {summary.tokens_per_s:.0f} tokens/s",
        "",
        f"{'model @ instance (prefill -> decode)':<48}{'requests':>10}",
    ]
    lines += [f"{name:<48}{count:>10}" for name, count in summary.per_instance.items()]
    return "\n".join(lines)


def demo_bodies(models: Sequence[str], n: int, seed: int = 0) -> list[dict[str, object]]:
    """``n`` streamed chat requests; a few long shared system prompts make prefixes matter, and
    every other request to a ``-pd`` model carries a long document of its own, long enough to
    go prefill-then-decode."""
    rng = random.Random(seed)
    systems = [
        f"You are assistant #{i}. " + "Answer briefly and precisely. " * 20 for i in range(4)
    ]
    words = ("river", "stone", "cloud", "market", "engine", "garden", "signal", "harbor")

    def question(i: int, model: str) -> str:
        ask = f"Question {i}: what is {rng.randint(2, 99)} squared?"
        if model.endswith("-pd") and (i // len(models)) % 2 == 0:
            document = " ".join(rng.choice(words) for _ in range(400))
            return f"Read this report #{i}: {document}\n{ask}"
        return ask

    return [
        {
            "model": (model := models[i % len(models)]),
            "messages": [
                {"role": "system", "content": rng.choice(systems)},
                {"role": "user", "content": question(i, model)},
            ],
            "max_tokens": rng.randint(8, 48),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        for i in range(n)
    ]


async def _one(session: aiohttp.ClientSession, url: str, body: dict[str, object]) -> Outcome:
    start = time.perf_counter()
    ttft: float | None = None
    tokens = 0
    async with session.post(url + "/v1/chat/completions", json=body) as resp:
        instance = resp.headers.get("X-Sagellm-Instance", "?")
        prefill = resp.headers.get("X-Sagellm-Prefill-Instance", "")
        async for line in resp.content:
            if ttft is None:
                ttft = time.perf_counter() - start
            if line.startswith(b"data: {") and b'"usage":{' in line:
                tokens = orjson.loads(line[6:])["usage"].get("completion_tokens", 0)
        status = resp.status
    elapsed = time.perf_counter() - start
    return Outcome(str(body["model"]), instance, status, prefill, ttft, elapsed, tokens)


async def run_demo(
    url: str,
    bodies: Sequence[dict[str, object]],
    concurrency: int,
    on_done: Callable[[], None],
    api_key: str | None = None,
) -> tuple[list[Outcome], float]:
    """Send ``bodies`` with at most ``concurrency`` in flight; returns outcomes and wall time."""
    limit = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def guarded(session: aiohttp.ClientSession, body: dict[str, object]) -> Outcome:
        async with limit:
            try:
                return await _one(session, url, body)
            except aiohttp.ClientError:
                return Outcome(str(body["model"]), "?", 0, "", None, 0.0, 0)
            finally:
                on_done()

    start = time.perf_counter()
    async with aiohttp.ClientSession(headers=headers) as session:
        outcomes = await asyncio.gather(*(guarded(session, b) for b in bodies))
    return list(outcomes), time.perf_counter() - start
