"""``oracle``: a benchmark-only routing strategy that reads the simulated engines' exact cache.

Before each request is routed (the router's ``prepare`` hook, see ``RouterState.prepare_pick``)
it sends the request body to every candidate's dev-mode ``POST /sim/cached_prefix``
concurrently; each simulator answers how many leading prompt tokens of that body its prefix
cache will hold once the requests already queued or running on it have been prefilled
(``cached_tokens_with_pending``; with ``pending: false``, what it holds right now,
``cached_tokens``), tokenized exactly as it would tokenize the request (chat template and
``cache_salt`` included). Counting queued and running prompts is what makes it an upper bound
on what any router can know: the engines' KV events, and so ``kv_aware``'s index, report a
block only once it has been computed. What it still does not see: requests another router (or
this one) has sent that have not reached an engine yet, and blocks evicted between the answer
and the request's admission. The pick then scores like ``prefix_aware`` and ``kv_aware``:
``load + miss_cost * uncached share``, the cheapest wins (ties: lower load, then at random),
with the same balance guard. An engine that does not answer within ``timeout_s`` counts as
holding nothing; when none answers (or on a retry, whose answers were used up by the first
pick) the least-loaded candidate wins.

The queries are part of its cost: one round trip to every engine before every request, which
adds to every TTFT. It is not a built-in: the routing benchmark loads it as a plugin
(``plugins: ["sagellm_router.bench.oracle:create"]``; ``oracle_now``, ``create_now``, is the
same with ``pending: false``), and the engines must run with
``VLLM_SERVER_DEV_MODE=1``. It never learns anything from its own picks.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import aiohttp

from sagellm_core.plugins import plugin
from sagellm_router.routing.base import (
    LoadView,
    RouteInput,
    StrategyContext,
    StrategyParamError,
    build_params,
    cheapest_for_cache,
    least_loaded,
)
from sagellm_router.types import Endpoint

PLUGIN = "sagellm_router.bench.oracle:create"
# ``oracle_now``: the same with ``pending: false``, to measure what counting queued and running
# prompts adds
PLUGINS = {"oracle": PLUGIN, "oracle_now": "sagellm_router.bench.oracle:create_now"}
ROUTE = "/sim/cached_prefix"
MAX_PREPARED = 1024  # answers of requests that were prepared but never picked (cancelled)

log = logging.getLogger("sagellm_router.bench.oracle")


@dataclass(frozen=True)
class OracleParams:
    miss_cost: float = 32.0
    balance_abs: float = 32.0
    balance_rel: float = 1.5
    timeout_s: float = 2.0
    pending: bool = True  # count prompts queued or running on the engine, not only the cache


@dataclass(frozen=True)
class Answers:
    """What the engines said about one request: the leading prompt tokens each URL holds (or
    will hold, see ``OracleParams.pending``), and the prompt's length."""

    cached: Mapping[str, int]
    prompt_tokens: int


def choose(
    answers: Answers | None,
    candidates: Sequence[Endpoint],
    loads: LoadView,
    params: OracleParams,
    rng: random.Random,
) -> Endpoint:
    """The candidate with the lowest ``load + miss_cost * (1 - cached / prompt)`` (pure)."""
    if answers is None or answers.prompt_tokens <= 0:
        return least_loaded(candidates, loads, rng)
    prompt = answers.prompt_tokens

    def held(endpoint: Endpoint) -> float:
        return min(answers.cached.get(endpoint.url, 0), prompt) / prompt

    return cheapest_for_cache(candidates, loads, held, params, rng)


class Oracle:
    def __init__(self, params: OracleParams, rng: random.Random) -> None:
        if params.miss_cost < 0 or params.timeout_s <= 0:
            raise StrategyParamError(
                "routing.params.oracle: miss_cost must be >= 0 and timeout_s > 0, got "
                f"{params.miss_cost}, {params.timeout_s}"
            )
        self._params = params
        self._rng = rng
        self._http: aiohttp.ClientSession | None = None
        self._prepared: OrderedDict[int, tuple[RouteInput, Answers]] = OrderedDict()

    async def prepare(self, request: RouteInput, candidates: Sequence[Endpoint]) -> None:
        """Ask every candidate, concurrently, what it holds of ``request``'s prompt."""
        body = getattr(request, "body", None)
        if not isinstance(body, dict):
            return
        if self._http is None:
            timeout = aiohttp.ClientTimeout(total=self._params.timeout_s)
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), timeout=timeout
            )
        urls = [c.url for c in candidates]
        replies = await asyncio.gather(*(self._ask(self._http, u, body) for u in urls))
        answered = [r for r in replies if r is not None]
        answers = Answers(
            {u: r[0] for u, r in zip(urls, replies, strict=True) if r is not None},
            max((r[1] for r in answered), default=0),
        )
        self._prepared[id(request)] = (request, answers)
        while len(self._prepared) > MAX_PREPARED:
            self._prepared.popitem(last=False)

    async def _ask(
        self, http: aiohttp.ClientSession, url: str, body: dict[str, Any]
    ) -> tuple[int, int] | None:
        try:
            async with http.post(url + ROUTE, json=body) as resp:
                data = await resp.json() if resp.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("oracle: %s%s failed: %s", url, ROUTE, exc)
            return None
        if not isinstance(data, dict):
            log.warning("oracle: %s%s answered %s", url, ROUTE, resp.status)
            return None
        held = data.get("cached_tokens_with_pending") if self._params.pending else None
        return int(data["cached_tokens"] if held is None else held), int(data["prompt_tokens"])

    def pick(
        self, request: RouteInput, candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint:
        entry = self._prepared.pop(id(request), None)
        answers = entry[1] if entry is not None and entry[0] is request else None
        return choose(answers, candidates, loads, self._params, self._rng)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None


@plugin("routing_strategy", "oracle")
def create(ctx: StrategyContext) -> Oracle:
    return Oracle(build_params(OracleParams, ctx.params, "oracle"), ctx.rng)


@plugin("routing_strategy", "oracle_now")
def create_now(ctx: StrategyContext) -> Oracle:
    params = build_params(OracleParams, ctx.params, "oracle_now")
    return Oracle(replace(params, pending=False), ctx.rng)
