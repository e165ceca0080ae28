"""kv_aware: route to the engine that truly holds the prompt's prefix, from the engines' KV events.

Inputs: the request's body (tokenized as the engine does: ``sagellm_router.kv.tokenizers``), the
candidates, their loads, and ``index``: blocks each engine reported in its KV-cache events. The
index is fed by the router app (``sagellm_router.kv.feeds``), never by ``pick``, which does no
I/O. Score: ``load + miss_cost * uncached share`` per candidate, the cheapest wins, with
``prefix_aware``'s balance guard. A candidate's cached share is the larger of what its events
say and what this router sent it within the last ``recent_s`` seconds
(``sagellm_router.kv.recent``: events come only after the engine admitted and computed a
prompt; 0 turns this off), or what another router replica sent it (``learn``; every pick is
also offered to ``announce``: ``sagellm_router.kv.peers``). When none of the candidates is
indexed (events not followed or not published yet), the prompt cannot be tokenized or has no
full block, ``prefix_aware`` decides (and learns those picks only: keeping it warm on every
pick would double the cost).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sagellm_router.kv.index import KvIndex
from sagellm_router.kv.recent import Recent, keys
from sagellm_router.kv.tokenizers import (
    TOKENIZERS,
    ByModel,
    HfTokenizer,
    SimTokenizer,
    Tokenizer,
    request_tokens,
)
from sagellm_router.routing.base import (
    LoadView,
    RouteInput,
    StrategyContext,
    StrategyParamError,
    build_params,
    cheapest_for_cache,
)
from sagellm_router.routing.prefix_aware import PrefixAware, PrefixAwareParams
from sagellm_router.stats.tracker import Clock
from sagellm_router.types import Endpoint

RECENT_BLOCK_BYTES = 256  # ~60 tokens: resolution enough to cost a cache miss


@dataclass(frozen=True)
class KvAwareParams:
    tokenizer: str = "sim"
    tokenizer_path: str | dict[str, str] | None = None
    tokenizer_revision: str | None = None
    max_blocks_per_engine: int = 65_536
    max_blocks_per_request: int = 1024
    miss_cost: float = 32.0
    balance_abs: float = 32.0
    balance_rel: float = 1.5
    recent_s: float = 2.0


def make_tokenizer(params: KvAwareParams) -> Tokenizer:
    where = "routing.params.kv_aware"
    if params.tokenizer not in TOKENIZERS:
        raise StrategyParamError(
            f"{where}.tokenizer: expected one of {TOKENIZERS}, got {params.tokenizer!r}"
        )
    if params.tokenizer == "sim":
        if params.tokenizer_path is not None:
            raise StrategyParamError(f"{where}.tokenizer_path is only used with tokenizer 'hf'")
        return SimTokenizer()
    path, revision = params.tokenizer_path, params.tokenizer_revision
    if not path:
        raise StrategyParamError(
            f"{where}.tokenizer_path is required with tokenizer 'hf': the model directory (or "
            "cached model id) the engines load, or a map of served model name -> directory"
        )
    try:
        if isinstance(path, str):
            return HfTokenizer.load(path, revision)
        return ByModel({model: HfTokenizer.load(p, revision) for model, p in path.items()})
    except ValueError as exc:
        raise StrategyParamError(f"{where}: {exc}") from exc


class KvAware:
    def __init__(
        self, params: KvAwareParams, rng: random.Random, index: KvIndex | None = None,
        tokenizer: Tokenizer | None = None, clock: Clock | None = None,
    ) -> None:  # fmt: skip
        if params.recent_s < 0:
            raise StrategyParamError(f"routing.params.kv_aware.recent_s: {params.recent_s} < 0")
        self._params = params
        self._recent = Recent(params.recent_s, clock) if params.recent_s and clock else None
        self._rng = rng
        self.tokenizer = tokenizer or make_tokenizer(params)
        self.index = index or KvIndex(params.max_blocks_per_engine)
        self.picks = {"kv": 0, "fallback": 0}
        #: set by the router app to share each pick (url, prompt keys) with peer replicas
        self.announce: Callable[[str, Sequence[int]], None] | None = None
        self.fallback = PrefixAware(
            PrefixAwareParams(miss_cost=params.miss_cost, balance_abs=params.balance_abs,
                              balance_rel=params.balance_rel), rng,
        )  # fmt: skip

    @classmethod
    def create(cls, ctx: StrategyContext) -> KvAware:
        return cls(build_params(KvAwareParams, ctx.params, "kv_aware"), ctx.rng, clock=ctx.clock)

    def pick(
        self, request: RouteInput, candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint:
        hashes = self._hashes(request)
        chosen = self._choose(request, candidates, loads, hashes)
        if chosen is None:
            self.picks["fallback"] += 1
            chosen = self.fallback.pick(request, candidates, loads)
        else:
            self.picks["kv"] += 1
        if self._recent is not None:
            self._recent.record(chosen.url, hashes)
            if self.announce is not None:
                self.announce(chosen.url, hashes)
        return chosen

    def learn(self, url: str, blocks: Sequence[int]) -> None:
        """Another router replica just sent a prompt with these ``recent.keys`` to ``url``."""
        if self._recent is not None:
            self._recent.record(url, blocks)

    def _hashes(self, request: RouteInput) -> list[int]:
        if self._recent is None:
            return []
        limit = self._params.max_blocks_per_request
        return keys(request.prompt_text, RECENT_BLOCK_BYTES, limit)

    def tokens(self, request: RouteInput) -> list[int] | None:
        """The request's prompt token ids as the engine computes them (None: unknown)."""
        body, path = getattr(request, "body", None), getattr(request, "path", None)
        if isinstance(body, dict) and isinstance(path, str):  # the router's ParsedRequest
            return request_tokens(self.tokenizer, path, body)
        text = request.prompt_text
        return request_tokens(self.tokenizer, "", {"prompt": text}) if text else None

    def cached_share(
        self, tokens: Sequence[int], candidates: Sequence[Endpoint]
    ) -> dict[str, float] | None:
        """The share of the prompt's full blocks each indexed candidate holds (others: 0);
        None when no candidate is indexed or the prompt has no full block."""
        sizes = {u: s for c in candidates if (s := self.index.block_size(u := c.url)) is not None}
        limit = self._params.max_blocks_per_request
        share: dict[str, float] = {}
        for size in set(sizes.values()):
            total = min(len(tokens) // size, limit)
            if total:
                urls = [u for u, s in sizes.items() if s == size]
                held = self.index.matched(tokens, size, limit, urls)
                share.update((u, n / total) for u, n in held.items())
        return share or None

    def _choose(
        self, request: RouteInput, candidates: Sequence[Endpoint], loads: LoadView,
        hashes: Sequence[int] = (),
    ) -> Endpoint | None:  # fmt: skip
        if not any(self.index.block_size(c.url) is not None for c in candidates):
            return None
        tokens = self.tokens(request)
        share = None if tokens is None else self.cached_share(tokens, candidates)
        if share is None:
            return None
        if self._recent is not None:
            for url, sent in self._recent.shares(hashes).items():
                share[url] = max(share.get(url, 0.0), sent)
        return cheapest_for_cache(
            candidates, loads, lambda e: share.get(e.url, 0.0), self._params, self._rng
        )

    def forget(self, keep: set[str]) -> None:
        """Endpoints that left the pool: forget their blocks (DP ranks' too) and prefix model."""
        self.fallback.forget(keep)
        if self._recent is not None:
            self._recent.forget(keep)
        for engine in self.index.engines():
            if engine.split("|", 1)[0] not in keep:
                self.index.drop_engine(engine)
