"""Benchmark-only variants of ``kv_aware`` that isolate why it places worse than it could.

* ``kv_aware_chat`` — ``kv_aware`` with chat requests tokenized from the simulator's chat
  template (``sagellm_sim.tokenizer.render_chat``), as the engines tokenize them; ``kv_aware``
  itself tokenizes the router's flattened ``role:content`` text, which shares no block with
  what the engines store, so its index never matches a chat prompt.
* ``kv_aware_recent`` — ``kv_aware_chat`` plus the router's own recent picks: an engine that
  was sent a prompt within the last ``recent_s`` seconds counts as holding the part of the
  prompt it shares with it (character blocks, as ``prefix_aware``), because its KV events
  only arrive once the engine has admitted and computed that prompt: requests for the same
  prefix that arrive meanwhile would otherwise be spread over engines that then all compute
  it. The engine's events stay the truth for everything older than ``recent_s``.

Loaded as plugins by the routing benchmark (``PLUGINS``); not built-ins.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from sagellm_core.plugins import plugin
from sagellm_router.routing.base import (
    LoadView,
    RouteInput,
    StrategyContext,
    build_params,
    least_loaded,
)
from sagellm_router.routing.kv_aware import KvAware, KvAwareParams
from sagellm_router.routing.prefix_aware import block_hashes
from sagellm_router.stats.tracker import Clock
from sagellm_router.types import Endpoint
from sagellm_sim.tokenizer import render_chat

PLUGINS = {"kv_aware_chat": "sagellm_router.bench.kv_variants:create_chat",
           "kv_aware_recent": "sagellm_router.bench.kv_variants:create_recent"}  # fmt: skip
BLOCK_CHARS = 64
MAX_RECENT_BLOCKS = 200_000


def engine_text(request: RouteInput) -> str:
    """The prompt as the simulated engine renders it (chat template for chat bodies)."""
    body = getattr(request, "body", None)
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        return request.prompt_text
    turns = []
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            content = "".join(p.get("text") or "" for p in content
                              if isinstance(p, dict) and p.get("type") == "text")  # fmt: skip
        turns.append((str(m.get("role")) if isinstance(m, dict) else "", content or ""))
    return render_chat(turns)


class KvAwareChat(KvAware):
    def pick(
        self, request: RouteInput, candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint:
        self._track(candidates)
        chosen = self._choose(engine_text(request), candidates, loads)
        if chosen is None:
            return self.fallback.pick(request, candidates, loads)
        self.fallback.record(chosen.url, request.prompt_text)
        return chosen


@dataclass(frozen=True)
class RecentParams(KvAwareParams):
    recent_s: float = 2.0


class Recent:
    """Character blocks of the prompts sent to each engine, each with the time it was sent."""

    def __init__(self, window_s: float, clock: Clock) -> None:
        self._window = window_s
        self._clock = clock
        self._sent: dict[str, OrderedDict[int, float]] = {}

    def record(self, url: str, hashes: Sequence[int]) -> None:
        now = self._clock()
        sent = self._sent.setdefault(url, OrderedDict())
        for h in hashes:
            sent[h] = now
            sent.move_to_end(h)
        while sent and (len(sent) > MAX_RECENT_BLOCKS or next(iter(sent.values())) < now - 3600):
            sent.popitem(last=False)

    def share(self, url: str, hashes: Sequence[int]) -> float:
        """Share of ``hashes`` (a leading run) sent to ``url`` within the window."""
        sent = self._sent.get(url)
        if not sent or not hashes:
            return 0.0
        since = self._clock() - self._window
        n = 0
        for h in hashes:
            at = sent.get(h)
            if at is None or at < since:
                break
            n += 1
        return n / len(hashes)


class KvAwareRecent(KvAwareChat):
    def __init__(self, params: RecentParams, rng: random.Random, clock: Clock) -> None:
        base = {f.name: getattr(params, f.name) for f in fields(KvAwareParams)}
        super().__init__(KvAwareParams(**base), rng)
        self._recent = Recent(params.recent_s, clock)

    def _choose(
        self, text: str, candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint | None:
        held, total = self.matched(text, candidates)
        if not held or total == 0:
            return None
        hashes = block_hashes(text, BLOCK_CHARS, 1024)
        p = self._params
        scored = []
        for endpoint in candidates:
            load = loads.load(endpoint.url)
            cached = max(
                held.get(endpoint.url, 0) / total, self._recent.share(endpoint.url, hashes)
            )
            scored.append(((load + p.miss_cost * (1.0 - cached), load), endpoint))
        best_key = min(key for key, _ in scored)
        min_load = min(key[1] for key, _ in scored)
        if best_key[1] - min_load > p.balance_abs and best_key[1] > p.balance_rel * min_load:
            chosen = least_loaded(candidates, loads, self._rng)
        else:
            best = [e for key, e in scored if key == best_key]
            chosen = best[0] if len(best) == 1 else self._rng.choice(best)
        self._recent.record(chosen.url, hashes)
        return chosen


@plugin("routing_strategy", "kv_aware_chat")
def create_chat(ctx: StrategyContext) -> KvAwareChat:
    return KvAwareChat(build_params(KvAwareParams, ctx.params, "kv_aware_chat"), ctx.rng)


@plugin("routing_strategy", "kv_aware_recent")
def create_recent(ctx: StrategyContext) -> KvAwareRecent:
    params: Any = build_params(RecentParams, ctx.params, "kv_aware_recent")
    return KvAwareRecent(params, ctx.rng, ctx.clock)
