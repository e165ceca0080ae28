"""``GET /v1/models`` as vLLM answers it, for every model the router serves.

Each model's card comes from one of its engines' own ``/v1/models`` (``owned_by``, ``root``,
``parent``, ``max_model_len``, ``permission`` as the engine reports them; ``id`` is the name
clients use through the router). A card is fetched at most every ``ttl_s`` per model; while no
engine of a model answers, the card has vLLM's fields with what the router knows
(``root`` = the model name, ``max_model_len`` null).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from sagellm_router.state import RouterState, serving_candidates

Card = dict[str, Any]


def default_card(model: str, created: int) -> Card:
    return {"id": model, "object": "model", "created": created, "owned_by": "vllm",
            "root": model, "parent": None, "max_model_len": None, "permission": []}  # fmt: skip


def pick_card(model: str, listing: object) -> Card | None:
    """The card for ``model`` in an engine's ``/v1/models`` answer (its only card if the
    engine serves under another name), with ``id`` set to ``model``."""
    data = listing.get("data") if isinstance(listing, dict) else None
    cards = [c for c in data or [] if isinstance(c, dict)]
    chosen = next((c for c in cards if c.get("id") == model), cards[0] if len(cards) == 1 else None)
    return None if chosen is None else {**chosen, "id": model}


class ModelCards:
    def __init__(self, ttl_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self._clock = ttl_s, clock
        self._cards: dict[str, tuple[float, Card]] = {}

    async def listing(self, state: RouterState, session: aiohttp.ClientSession | None) -> Card:
        models = state.table.models()
        cards = await asyncio.gather(*(self._card(state, session, m) for m in models))
        return {"object": "list", "data": list(cards)}

    async def _card(
        self, state: RouterState, session: aiohttp.ClientSession | None, model: str
    ) -> Card:
        now = self._clock()
        kept = self._cards.get(model)
        if kept is not None and now - kept[0] < self.ttl_s:
            return kept[1]
        card = await self._fetch(state, session, model) if session is not None else None
        if card is None:
            return default_card(model, int(time.time()))
        self._cards[model] = (now, card)
        return card

    @staticmethod
    async def _fetch(state: RouterState, session: aiohttp.ClientSession, model: str) -> Card | None:
        for pool in state.table.for_model(model):
            for endpoint in serving_candidates(pool, state.health.ejected)[:2]:
                if not endpoint.url.startswith("http"):
                    continue
                try:
                    async with session.get(
                        endpoint.url + "/v1/models", timeout=aiohttp.ClientTimeout(total=2.0)
                    ) as resp:
                        if resp.status != 200:
                            continue
                        card = pick_card(model, orjson.loads(await resp.read()))
                except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
                    continue
                if card is not None:
                    return card
        return None
