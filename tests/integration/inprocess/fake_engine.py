"""A fake in-process engine with vLLM ``AsyncLLM``'s shape (``generate`` yields cumulative
``RequestOutput``-like objects; ``abort``), for tests without vLLM installed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Completion:
    text: str
    token_ids: list[int]
    finish_reason: str | None = None


@dataclass
class Output:
    outputs: list[Completion]
    prompt_token_ids: list[int]
    finished: bool


@dataclass
class FakeEngine:
    """Emits ``word{i} `` per token up to ``max_tokens`` (or ``natural`` tokens: ``stop``).

    ``gate``: when set, each token waits for it (tests hold requests running); ``fail``: raise
    on generate; ``seen``/``aborted``: request ids; ``params``: the sampling params received.
    """

    natural: int = 5
    gate: asyncio.Event | None = None
    fail: bool = False
    seen: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    shut_down: bool = False

    async def generate(
        self, prompt: Any, sampling_params: Any, request_id: str
    ) -> AsyncIterator[Output]:
        self.seen.append(request_id)
        self.params.append(sampling_params)
        if self.fail:
            raise RuntimeError("engine core died")
        prompt_ids = list(range(len(str(prompt).split())))
        limit = sampling_params.get("max_tokens") or 1000
        count = min(limit, self.natural)
        text = ""
        for i in range(count):
            if self.gate is not None:
                await self.gate.wait()
            await asyncio.sleep(0)
            text += f"word{i} "
            done = i == count - 1
            reason = ("length" if count == limit else "stop") if done else None
            yield Output([Completion(text, list(range(i + 1)), reason)], prompt_ids, done)

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)

    def shutdown(self) -> None:
        self.shut_down = True
