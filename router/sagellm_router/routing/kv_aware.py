"""kv_aware: route to the engine that truly holds the prompt's prefix, from the engines' KV events.

Inputs: the request's body (tokenized as the engine does: ``sagellm_router.kv.tokenizers``), the
candidates, their loads, and ``index``: blocks each engine reported in its KV-cache events. The
index is fed by the router app (``sagellm_router.kv.feeds``), never by ``pick``, which does no
I/O. Score: ``load + miss_cost * uncached share`` per candidate, the cheapest wins, with
``prefix_aware``'s balance guard. When none of the candidates is indexed (events not followed
or not published yet), the prompt cannot be tokenized or has no full block, ``prefix_aware``
decides; it also learns every kv pick, so it is warm when events stop.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from sagellm_router.kv.index import KvIndex, request_keys
from sagellm_router.kv.tokenizers import (
    TOKENIZERS,
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
    least_loaded,
)
from sagellm_router.routing.prefix_aware import PrefixAware, PrefixAwareParams
from sagellm_router.types import Endpoint


@runtime_checkable
class BodyInput(Protocol):
    """A request that carries its route and JSON body (the router's ``ParsedRequest``)."""

    @property
    def path(self) -> str: ...

    @property
    def body(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class KvAwareParams:
    tokenizer: str = "sim"
    tokenizer_path: str | None = None
    tokenizer_revision: str | None = None
    max_blocks_per_engine: int = 65_536
    max_blocks_per_request: int = 1024
    miss_cost: float = 32.0
    balance_abs: float = 32.0
    balance_rel: float = 1.5


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
    if not params.tokenizer_path:
        raise StrategyParamError(
            f"{where}.tokenizer_path is required with tokenizer 'hf': the model directory (or "
            "cached model id) the engines load"
        )
    try:
        return HfTokenizer.load(params.tokenizer_path, params.tokenizer_revision)
    except ValueError as exc:
        raise StrategyParamError(f"{where}: {exc}") from exc


class KvAware:
    def __init__(
        self, params: KvAwareParams, rng: random.Random, index: KvIndex | None = None,
        tokenizer: Tokenizer | None = None,
    ) -> None:  # fmt: skip
        self._params = params
        self._rng = rng
        self.tokenizer = tokenizer or make_tokenizer(params)
        self.index = index or KvIndex(params.max_blocks_per_engine)
        self.picks = {"kv": 0, "fallback": 0}
        self.fallback = PrefixAware(
            PrefixAwareParams(miss_cost=params.miss_cost, balance_abs=params.balance_abs,
                              balance_rel=params.balance_rel), rng,
        )  # fmt: skip

    @classmethod
    def create(cls, ctx: StrategyContext) -> KvAware:
        return cls(build_params(KvAwareParams, ctx.params, "kv_aware"), ctx.rng)

    def pick(
        self, request: RouteInput, candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint:
        chosen = self._choose(request, candidates, loads)
        if chosen is None:
            self.picks["fallback"] += 1
            return self.fallback.pick(request, candidates, loads)
        self.picks["kv"] += 1
        self.fallback.record(chosen.url, request.prompt_text)
        return chosen

    def tokens(self, request: RouteInput) -> list[int] | None:
        """The request's prompt token ids as the engine computes them (None: unknown)."""
        if isinstance(request, BodyInput):
            return request_tokens(self.tokenizer, request.path, request.body)
        text = request.prompt_text
        return request_tokens(self.tokenizer, "", {"prompt": text}) if text else None

    def matched(
        self, tokens: Sequence[int], candidates: Sequence[Endpoint]
    ) -> tuple[dict[str, int], int]:
        """Leading blocks each indexed candidate holds, and the prompt's number of full blocks."""
        sizes = {u: s for c in candidates if (s := self.index.block_size(u := c.url)) is not None}
        if not sizes:
            return {}, 0
        limit = self._params.max_blocks_per_request
        keys = {size: request_keys(tokens, size, limit) for size in set(sizes.values())}
        out: dict[str, int] = {}
        for size, block_keys in keys.items():
            urls = [u for u, s in sizes.items() if s == size]
            out.update(self.index.matched_blocks(block_keys, urls))
        return out, max(len(k) for k in keys.values())

    def _choose(
        self, request: RouteInput, candidates: Sequence[Endpoint], loads: LoadView
    ) -> Endpoint | None:
        if not any(self.index.block_size(c.url) is not None for c in candidates):
            return None
        tokens = self.tokens(request)
        if tokens is None:
            return None
        held, total = self.matched(tokens, candidates)
        if total == 0:
            return None
        p = self._params
        scored = []
        for endpoint in candidates:
            load = loads.load(endpoint.url)
            missing = 1.0 - held.get(endpoint.url, 0) / total
            scored.append(((load + p.miss_cost * missing, load), endpoint))
        best_key = min(key for key, _ in scored)
        best = [e for key, e in scored if key == best_key]
        min_load = min(key[1] for key, _ in scored)
        if best_key[1] - min_load > p.balance_abs and best_key[1] > p.balance_rel * min_load:
            return least_loaded(candidates, loads, self._rng)
        return best[0] if len(best) == 1 else self._rng.choice(best)

    def forget(self, keep: set[str]) -> None:
        """Endpoints that left the pool: forget their blocks (DP ranks' too) and prefix model."""
        self.fallback.forget(keep)
        for engine in self.index.engines():
            if engine.split("|", 1)[0] not in keep:
                self.index.drop_engine(engine)
