"""kv_aware's costs: memory of the KV-event index and CPU per pick against prefix_aware.

    .venv/bin/python bench/kv_index_memory.py [--engines 8] [--tokens 65536] [--block-size 16]
        [--picks 400] [--cap]

Memory: ``--engines`` engines each report (as ``BlockStored`` events, chained as vLLM sends
them) distinct conversations of 2048 tokens until they hold ``--tokens`` cached tokens; the
index's allocation is measured with ``tracemalloc`` (net of the events, which are not kept).
``--cap`` also fills every engine to the index's bound (``max_blocks_per_engine``, 65,536
blocks) to show the most the index can hold.

CPU: the same pool (2 engines shown to the strategy, index full as above), prompts of 1,000 to
2,000 simulator tokens sharing the engines' conversation prefixes, as completions bodies and
as chat bodies; µs per ``pick`` for ``kv_aware`` (tokenize as the engine, look the blocks
up) and for ``prefix_aware``, best of 5 alternating rounds.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import timeit
import tracemalloc
from dataclasses import dataclass
from typing import Any

from sagellm_core.sim_tokens import chat_tokens, tokenize
from sagellm_router.kv.events import Batch, Stored
from sagellm_router.kv.index import KvIndex
from sagellm_router.routing.kv_aware import KvAware, KvAwareParams
from sagellm_router.routing.prefix_aware import PrefixAware, PrefixAwareParams
from sagellm_router.types import Endpoint

CONVERSATION = 2048
WORDS = ("the", "of", "and", "model", "token", "cache", "block", "queue", "route", "node")


def text_of(rng: random.Random, words: int) -> str:
    """``words`` simulator tokens (each word with its space is one token)."""
    return "".join(" " + rng.choice(WORDS) + str(rng.randrange(1000)) for _ in range(words // 2))


def as_chat(doc: str, question: str = "go on") -> list[dict[str, str]]:
    return [{"role": "system", "content": doc}, {"role": "user", "content": question}]


def fill(
    index: KvIndex, engine: str, tokens: int, block: int, seed: int, chat: bool = False
) -> list[str]:
    """Store ``tokens`` cached tokens on ``engine`` as documents (sent as completions prompts,
    or as chat system prompts); returns the documents."""
    rng = random.Random(seed)
    texts, seq, next_hash = [], 0, seed << 32
    while tokens > 0:
        text = text_of(rng, CONVERSATION)
        ids = (chat_tokens(as_chat(text)) if chat else tokenize(text))[: min(CONVERSATION, tokens)]
        blocks = len(ids) // block
        hashes = tuple(range(next_hash, next_hash + blocks))
        next_hash += blocks
        for start in range(0, blocks, 16):  # one BlockStored per step of 16 blocks, chained
            part = hashes[start : start + 16]
            parent = hashes[start - 1] if start else None
            ids_part = tuple(ids[start * block : (start + len(part)) * block])
            index.apply(engine, Batch(seq, 0.0, (Stored(part, parent, ids_part, block),), 0))
            seq += 1
        texts.append(text)
        tokens -= blocks * block
    return texts


def memory(engines: int, tokens: int, block: int, cap: int) -> tuple[float, float]:
    """MiB the index holds after feeding (and the peak while feeding)."""
    gc.collect()
    tracemalloc.start()
    index = KvIndex(cap)
    for e in range(engines):
        fill(index, f"http://10.0.0.{e}:8000", tokens, block, e + 1)  # texts dropped
    held = sum(index.blocks(u) for u in index.engines())
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"  {engines} engines x {tokens} tokens (block {block}): {held} blocks indexed")
    return current / 2**20, peak / 2**20


@dataclass
class Req:
    path: str
    body: dict[str, Any]
    session_key: str | None = None

    @property
    def prompt_text(self) -> str:
        if self.path == "/v1/chat/completions":
            return "".join(f"{m['role']}:{m['content']}\n" for m in self.body["messages"])
        return str(self.body["prompt"])


class NoLoad:
    def in_flight(self, url: str) -> int:
        return 0

    def load(self, url: str) -> float:
        return 0.0


def per_pick(strategies: list[Any], requests: list[Req], cands: list[Endpoint]) -> list[float]:
    """µs per pick of each strategy: rounds alternate between them (the machine's noise hits
    both alike), best round of 5 each."""
    loads = NoLoad()
    best = [float("inf")] * len(strategies)
    for _ in range(5):
        for i, strategy in enumerate(strategies):
            t = timeit.timeit(
                lambda s=strategy: [s.pick(r, cands, loads) for r in requests], number=1
            )
            best[i] = min(best[i], t / len(requests) * 1e6)
    return best


def cpu(engines: int, tokens: int, block: int, picks: int) -> None:
    cands = [Endpoint(f"http://10.0.0.{e}:8000", f"e{e}") for e in range(engines)]
    for kind in ("completions", "chat"):
        rng, index, chat = random.Random(7), KvIndex(), kind == "chat"
        texts = [
            t for e, c in enumerate(cands) for t in fill(index, c.url, tokens, block, e + 1, chat)
        ]
        requests = []
        for _ in range(picks):  # a shared document's first 1000-2000 tokens, then 64 new ones
            words = rng.choice(texts).split(" ")[1 : 1 + rng.randrange(1000, 2000) // 2]
            prompt = " " + " ".join(words) + text_of(rng, 64)
            body = {"messages": as_chat(prompt)} if chat else {"prompt": prompt}
            requests.append(Req(f"/v1/{'chat/' if chat else ''}completions", body))
        kv = KvAware(KvAwareParams(), random.Random(1), index, clock=time.monotonic)
        events = KvAware(KvAwareParams(recent_s=0), random.Random(1), index)
        prefix = PrefixAware(PrefixAwareParams(), random.Random(1))
        kv_us, events_us, prefix_us = per_pick([kv, events, prefix], requests, cands)
        decided = f"{kv.picks['kv']}/{sum(kv.picks.values())}"
        print(
            f"  {kind:11s} kv_aware {kv_us:6.1f} µs/pick (kv decided {decided}; events only "
            f"{events_us:.1f})   prefix_aware {prefix_us:6.1f} µs/pick   "
            f"ratio {kv_us / prefix_us:.2f} ({events_us / prefix_us:.2f})"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--engines", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=65_536)
    ap.add_argument("--block-size", type=int, default=16)
    ap.add_argument("--picks", type=int, default=400)
    ap.add_argument("--cap", action="store_true")
    a = ap.parse_args()
    print("memory (tracemalloc):")
    used, peak = memory(a.engines, a.tokens, a.block_size, 65_536)
    print(f"  index: {used:.1f} MiB (peak while feeding {peak:.1f} MiB)")
    if a.cap:
        full = 65_536 * a.block_size
        used, peak = memory(a.engines, full, a.block_size, 65_536)
        print(f"  at the bound ({full} tokens per engine): {used:.1f} MiB (peak {peak:.1f} MiB)")
    print(f"CPU per pick ({a.picks} prompts of 1000-2000 tokens, {a.engines} candidates):")
    cpu(a.engines, a.tokens, a.block_size, a.picks)


if __name__ == "__main__":
    main()
