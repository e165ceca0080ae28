"""The pure engine core: continuous batching over a paged KV cache (vLLM V1 scheduler shape).

No I/O and no clock: callers pass ``now`` to every method, so tests drive it with a fake clock
and the asyncio runner drives it with real time. One step is::

    batch = core.schedule(now)          # admit / chunk / preempt, allocate KV blocks
    dt = core.cost.step_seconds(batch.work)
    outputs = core.complete(batch, now + dt)   # tokens produced by that forward pass

Scheduling per step (token budget ``max_num_batched_tokens``):
1. running requests first, in admission order: decodes take 1 token, unfinished prefills take
   the rest of their prompt up to the budget (chunked prefill). When a block cannot be
   allocated the most recently admitted running request is preempted (its blocks freed, it goes
   back to the head of the waiting queue and is recomputed later).
2. then waiting requests in FIFO order while ``len(running) < max_num_seqs`` and budget and
   blocks remain; each first looks up its longest cached prompt prefix (at most
   ``prompt_len - 1`` tokens, so at least one token is computed, like vLLM).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from sagellm_sim.kvcache import KVCache
from sagellm_sim.profiles import CostModel, StepWork


class Status(Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(eq=False)
class SimRequest:
    """One request inside an engine. Times are whatever clock the driver uses."""

    request_id: str
    prompt_ids: list[int]
    max_tokens: int
    output_len: int  # tokens this request will produce (<= max_tokens)
    arrival: float
    block_hashes: list[int] = field(default_factory=list)
    remote_prefill: bool = False  # KV arrives from a prefill instance (PD decode side)
    ready_at: float = 0.0  # not schedulable before (remote KV transfer)
    hold_blocks: bool = False  # keep KV after finishing (PD prefill side)
    status: Status = Status.WAITING
    blocks: list[int] = field(default_factory=list)
    num_computed: int = 0
    num_output: int = 0
    cached_tokens: int = 0
    committed_blocks: int = 0
    num_preemptions: int = 0
    first_scheduled: float | None = None
    first_token: float | None = None
    finished_at: float | None = None

    @property
    def prompt_len(self) -> int:
        return len(self.prompt_ids)

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_ids) + self.num_output

    @property
    def finish_reason(self) -> str:
        return "length" if self.output_len >= self.max_tokens else "stop"


@dataclass
class Batch:
    items: list[tuple[SimRequest, int]]
    work: StepWork

    def __bool__(self) -> bool:
        return bool(self.items)


@dataclass
class Output:
    request: SimRequest
    new_tokens: int
    finished: bool


@dataclass
class Counters:
    prefix_queries: int = 0
    prefix_hits: int = 0
    prompt_tokens: int = 0
    generation_tokens: int = 0
    preemptions: int = 0


class EngineCore:
    """Scheduler state of one engine (one DP rank)."""

    def __init__(
        self,
        cost: CostModel,
        cache: KVCache,
        max_num_seqs: int,
        max_num_batched_tokens: int,
        chunked_prefill: bool = True,
    ) -> None:
        if max_num_seqs < 1 or max_num_batched_tokens < 1:
            raise ValueError("max_num_seqs and max_num_batched_tokens must be >= 1")
        self.cost = cost
        self.cache = cache
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.chunked_prefill = chunked_prefill
        self.waiting: list[SimRequest] = []
        self.running: dict[str, SimRequest] = {}
        self.counters = Counters()

    # -- requests ------------------------------------------------------------------------
    def add(self, req: SimRequest) -> None:
        self.waiting.append(req)

    def abort(self, req: SimRequest) -> None:
        """Drop a request (client went away); frees its blocks."""
        if req.status is Status.WAITING and req in self.waiting:
            self.waiting.remove(req)
        elif req.status is Status.RUNNING:
            self.running.pop(req.request_id, None)
            self._free(req)
        req.status = Status.FINISHED

    def has_work(self) -> bool:
        return bool(self.running or self.waiting)

    def next_ready_at(self) -> float | None:
        """Earliest time a not-yet-ready waiting request becomes schedulable."""
        return min((r.ready_at for r in self.waiting), default=None)

    # -- one step ------------------------------------------------------------------------
    def schedule(self, now: float) -> Batch:
        items: list[tuple[SimRequest, int]] = []
        preemptions = self.counters.preemptions
        budget = self._schedule_running(items, self.max_num_batched_tokens)
        if self.counters.preemptions == preemptions:  # vLLM admits nothing in a preempting step
            self._schedule_waiting(items, budget, now)
        return Batch(items, self._work(items))

    def _schedule_running(self, items: list[tuple[SimRequest, int]], budget: int) -> int:
        for req in list(self.running.values()):
            if budget <= 0 or req.status is not Status.RUNNING:
                continue
            n = min(req.num_tokens - req.num_computed, budget)
            while not self._grow(req, req.num_computed + n):
                victim = next(reversed(self.running.values()))
                self._preempt(victim)
                if victim is req:
                    break
            if req.status is Status.RUNNING:
                items.append((req, n))
                budget -= n
        return budget

    def _schedule_waiting(
        self, items: list[tuple[SimRequest, int]], budget: int, now: float
    ) -> None:
        i = 0
        while i < len(self.waiting) and budget > 0 and len(self.running) < self.max_num_seqs:
            req = self.waiting[i]
            if req.ready_at > now:
                i += 1
                continue
            n = self._admit(req, budget)
            if n == 0:
                break
            del self.waiting[i]
            req.status = Status.RUNNING
            self.running[req.request_id] = req
            if req.first_scheduled is None:
                req.first_scheduled = now
            items.append((req, n))
            budget -= n

    def _admit(self, req: SimRequest, budget: int) -> int:
        """Allocate KV for the first chunk of a waiting request; 0 if it does not fit."""
        hit_blocks: list[int] = []
        if req.remote_prefill and req.num_preemptions == 0:
            computed = req.prompt_len - 1
        else:
            hit_blocks = self.cache.match_prefix(self._usable(req.block_hashes, req.num_tokens))
            computed = len(hit_blocks) * self.cache.block_size
        if not self.chunked_prefill and req.num_tokens - computed > budget:
            return 0  # without chunked prefill a prompt is scheduled whole or waits
        n = min(req.num_tokens - computed, budget)
        self.cache.acquire(hit_blocks)
        fresh = self.cache.allocate(self.cache.blocks_for(computed + n) - len(hit_blocks))
        if fresh is None:
            self.cache.release(hit_blocks)
            return 0
        req.blocks = hit_blocks + fresh
        req.num_computed = computed
        req.committed_blocks = len(hit_blocks)
        if not req.remote_prefill:
            req.cached_tokens = computed
            self.counters.prefix_queries += req.prompt_len
            self.counters.prefix_hits += computed
        return n

    def _usable(self, hashes: Sequence[int], num_tokens: int) -> Sequence[int]:
        """The blocks a prefix hit may cover: never the last token, which must be computed."""
        return hashes[: (num_tokens - 1) // self.cache.block_size]

    def cached_prompt_tokens(self, hashes: Sequence[int], prompt_len: int) -> int:
        """Leading tokens a new prompt with block ``hashes`` would find cached right now (what
        ``_admit`` would count; no reference is taken)."""
        return (
            len(self.cache.match_prefix(self._usable(hashes, prompt_len))) * self.cache.block_size
        )

    def pending_prompt_tokens(self, hashes: Sequence[int], prompt_len: int) -> int:
        """Leading tokens a new prompt with block ``hashes`` would find cached once every
        waiting and running request has computed its prompt, if nothing is evicted meanwhile
        (>= ``cached_prompt_tokens``). Block hashes chain their parents', so a request sharing
        block ``i`` of the prompt shares blocks ``0..i`` too: the requests cover a leading run,
        and the cache may extend it."""
        if not self.cache.enable_prefix_caching:
            return 0
        usable = self._usable(hashes, prompt_len)
        queued = (*self.waiting, *self.running.values())
        covered = max((_shared_blocks(r.block_hashes, usable) for r in queued), default=0)
        extended = covered + len(self.cache.match_prefix(usable[covered:]))
        return extended * self.cache.block_size

    def _grow(self, req: SimRequest, tokens: int) -> bool:
        need = self.cache.blocks_for(tokens) - len(req.blocks)
        if need <= 0:
            return True
        fresh = self.cache.allocate(need)
        if fresh is None:
            return False
        req.blocks.extend(fresh)
        return True

    def _preempt(self, req: SimRequest) -> None:
        del self.running[req.request_id]
        self._free(req)
        req.blocks, req.num_computed, req.committed_blocks = [], 0, 0
        req.status = Status.WAITING
        req.num_preemptions += 1
        self.counters.preemptions += 1
        self.waiting.insert(0, req)

    def _work(self, items: list[tuple[SimRequest, int]]) -> StepWork:
        prefill = attention = seqs = context = 0
        for req, n in items:
            if req.num_computed >= req.prompt_len:
                seqs += 1
                context += req.num_computed + 1
            else:
                prefill += n
                attention += n * (req.num_computed + n)
        return StepWork(prefill, attention, seqs, context)

    def complete(self, batch: Batch, now: float) -> list[Output]:
        """Apply a finished forward pass: advance KV, sample tokens, finish requests."""
        outputs = []
        for req, n in batch.items:
            if req.status is not Status.RUNNING:
                continue  # aborted or preempted while the step ran
            req.num_computed += n
            self._commit_blocks(req)
            if req.num_computed < req.num_tokens:
                continue  # a prefill chunk that did not reach the end of the prompt
            if req.num_output == 0 and req.first_token is None:
                req.first_token = now
                self.counters.prompt_tokens += req.prompt_len
            req.num_output += 1
            self.counters.generation_tokens += 1
            done = req.num_output >= req.output_len
            if done:
                self._finish(req, now)
            outputs.append(Output(req, 1, done))
        return outputs

    def _commit_blocks(self, req: SimRequest) -> None:
        size = self.cache.block_size
        first, full = req.committed_blocks, min(req.num_computed // size, len(req.block_hashes))
        if full > first:
            parent = req.block_hashes[first - 1] if first else None
            self.cache.store(req.blocks[first:full], req.block_hashes[first:full], parent,
                             req.prompt_ids[first * size : full * size])  # fmt: skip
        req.committed_blocks = max(first, full)

    def _finish(self, req: SimRequest, now: float) -> None:
        del self.running[req.request_id]
        req.status = Status.FINISHED
        req.finished_at = now
        if not req.hold_blocks:
            self._free(req)

    def _free(self, req: SimRequest) -> None:
        self.cache.release(req.blocks)
        req.blocks = []

    def release_held(self, req: SimRequest) -> None:
        """Free the KV a prefill-side request kept for a remote decode."""
        if req.hold_blocks and req.blocks:
            self._free(req)


def _shared_blocks(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading block hashes ``a`` and ``b`` have in common."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
