"""What-if, offline: the ``routing`` fleet on one virtual clock behind an idealised router.

Replays a ``sagellm bench`` workload (``sagellm_router.bench.workloads``) on N simulated engine
cores (``sagellm_sim.engine.EngineCore``, no HTTP, no processes, no wall clock) and routes every
arrival with the cost rule of ``prefix_aware``/``kv_aware``/the oracle: ``load + miss_cost x
uncached share``, the same balance guard, ties at random. What the router believes an engine
holds (``--belief``):

* ``sent``: the prompt's first block went there before (a router's memory of its own picks,
  never forgetting: ``prefix_aware``'s model within one run);
* ``now``: the engine's exact cache (``cached_prompt_tokens``: the oracle's ``pending: false``);
* ``pending``: the exact cache plus the prompts queued and running there
  (``pending_prompt_tokens``: the oracle);
* ``cache_aware``: not our cost rule but vllm-router's (``ThresholdFleet``), with its memory of
  what it sent.

The router has no latency and sees every engine at once, so this isolates placement knowledge
from the costs of getting it. It prints the hit rate, cached blocks evicted per engine, how many
requests went to an engine believed to hold their prefix and found less than half of their
prompt cached there (evicted, or not computed yet), and TTFT (wall ms at the time scale, like
the benchmark's), and the longest queue of requests waiting on one engine::

    .venv/bin/python bench/fleet_replay.py --workload kv_pressure --rate 25 --duration 20
    .venv/bin/python bench/fleet_replay.py --workload shared_prefix --rate 58 --duration 20 \
        --belief pending cache_aware

A model, not a measurement: loads are the engines' own request counts, with no router, network
or CPU cost.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass, field

from sagellm_router.bench import workloads
from sagellm_sim.engine import EngineCore, SimRequest
from sagellm_sim.kv_events import BlockRemoved
from sagellm_sim.kvcache import KVCache, block_hashes
from sagellm_sim.profiles import CostModel, Parallelism, get_profile
from sagellm_sim.protocol import chat_tokens

BLOCK = 16
MISS_COST, BALANCE_ABS, BALANCE_REL = 32.0, 32.0, 1.5


@dataclass
class Fleet:
    cores: list[EngineCore]
    belief: str
    sent: list[set[int]] = field(default_factory=list)
    evicted: int = 0
    max_waiting: int = 0  # the longest queue of requests waiting on one engine

    def held(self, e: int, r: SimRequest) -> float:
        core = self.cores[e]
        if self.belief == "now":
            return core.cached_prompt_tokens(r.block_hashes, r.prompt_len) / r.prompt_len
        if self.belief == "pending":
            return core.pending_prompt_tokens(r.block_hashes, r.prompt_len) / r.prompt_len
        return 1.0 if r.block_hashes and r.block_hashes[0] in self.sent[e] else 0.0

    def load(self, e: int) -> int:
        return len(self.cores[e].running) + len(self.cores[e].waiting)

    def pick(self, r: SimRequest, rng: random.Random) -> tuple[int, bool]:
        n = range(len(self.cores))
        held = [self.held(e, r) for e in n]
        best = min(n, key=lambda e: (self.load(e) + MISS_COST * (1 - held[e]), self.load(e),
                                     rng.random()))  # fmt: skip
        least = min(self.load(e) for e in n)
        if self.load(best) - least > BALANCE_ABS and self.load(best) > BALANCE_REL * least:
            best = min(n, key=self.load)
        return best, held[best] > 0.5


@dataclass
class ThresholdFleet(Fleet):
    """vllm-router's ``cache_aware`` with its defaults (SGLang's rule): when the busiest engine
    has more than 64 requests over the idlest and 1.5x its load, the idlest; otherwise the
    engine whose tree matches most of the prompt if that is over 30 %, else the engine with the
    smallest tree. Its tree is what it sent (block-granular here, characters there), never
    evicted within a run (its eviction runs every 120 s)."""

    trees: list[set[int]] = field(default_factory=list)

    def pick(self, r: SimRequest, rng: random.Random) -> tuple[int, bool]:
        n = range(len(self.trees))
        loads = [self.load(e) for e in n]
        if max(loads) - min(loads) > 64 and max(loads) > 1.5 * min(loads):
            best = min(n, key=lambda e: (loads[e], rng.random()))
        else:
            match = [self.matched(e, r) for e in n]
            best = max(n, key=lambda e: (match[e], rng.random()))
            if match[best] <= 0.3:
                best = min(n, key=lambda e: (len(self.trees[e]), rng.random()))
        self.trees[best].update(r.block_hashes)
        return best, False

    def matched(self, e: int, r: SimRequest) -> float:
        k = next((i for i, h in enumerate(r.block_hashes) if h not in self.trees[e]),
                 len(r.block_hashes))  # fmt: skip
        return k * BLOCK / r.prompt_len


def make_fleet(belief: str, cores: list[EngineCore]) -> Fleet:
    if belief == "cache_aware":
        return ThresholdFleet(cores, belief, [set() for _ in cores], trees=[set() for _ in cores])
    return Fleet(cores, belief, [set() for _ in cores])


def requests(kind: str, rate: float, duration: float, seed: int, scale: float) -> list[SimRequest]:
    params = workloads.WorkloadParams(rate=rate, duration_s=duration, seed=seed, time_scale=scale)
    out = []
    for s in workloads.generate(kind, params):
        turn = s.turns[0]  # single-turn workloads; later turns need the replies
        ids = chat_tokens([{"role": "system", "content": s.system},
                           {"role": "user", "content": turn.user}])  # fmt: skip
        out.append(SimRequest(str(s.sid), ids, turn.max_tokens, turn.max_tokens,
                              s.start_s / scale, block_hashes(ids, BLOCK)))  # fmt: skip
    return out


def run(fleet: Fleet, arrivals: list[SimRequest], rng: random.Random) -> list[SimRequest]:
    """Step every engine on one clock, routing each arrival when its time comes."""
    next_t = [0.0] * len(fleet.cores)
    pending, done = list(arrivals), []
    while pending or any(c.has_work() for c in fleet.cores):
        busy = [(next_t[e], e) for e, c in enumerate(fleet.cores) if c.has_work()]
        t_step, e = min(busy) if busy else (float("inf"), -1)
        if pending and pending[0].arrival <= t_step:
            r = pending.pop(0)
            k, believed = fleet.pick(r, rng)
            r.request_id += "+" if believed else ""
            fleet.sent[k].add(r.block_hashes[0] if r.block_hashes else -1)
            if not fleet.cores[k].has_work():
                next_t[k] = max(next_t[k], r.arrival)
            fleet.cores[k].add(r)
            fleet.max_waiting = max(fleet.max_waiting, len(fleet.cores[k].waiting))
            done.append(r)
            continue
        core = fleet.cores[e]
        batch = core.schedule(t_step)
        if not batch:  # waiting on memory that a running request will free
            next_t[e] = t_step + 1e-3
            continue
        next_t[e] = t_step + core.cost.step_seconds(batch.work)
        core.complete(batch, next_t[e])
        fleet.evicted += sum(isinstance(x, BlockRemoved) for x in core.cache.take_events())
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", default="kv_pressure", choices=sorted(workloads.WORKLOADS))
    ap.add_argument("--rate", type=float, required=True, help="fleet requests/s (wall)")
    ap.add_argument("--duration", type=float, default=2.5, help="seconds of arrivals (wall)")
    ap.add_argument(
        "--belief",
        nargs="+",
        default=["sent", "now", "pending"],
        choices=["sent", "now", "pending", "cache_aware"],
    )
    ap.add_argument("--engines", type=int, default=8)
    ap.add_argument("--blocks", type=int, default=4096)
    ap.add_argument("--max-num-seqs", type=int, default=32)
    ap.add_argument("--time-scale", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    cost = CostModel(get_profile("llama-3.1-8b-h100"), Parallelism())
    for belief in a.belief:
        cores = [EngineCore(cost, KVCache(a.blocks, BLOCK, True, record_events=True),
                            a.max_num_seqs, 8192) for _ in range(a.engines)]  # fmt: skip
        fleet = make_fleet(belief, cores)
        reqs = run(fleet, requests(a.workload, a.rate, a.duration, a.seed, a.time_scale),
                   random.Random(a.seed))  # fmt: skip
        queries = sum(c.counters.prefix_queries for c in cores)
        hits = sum(c.counters.prefix_hits for c in cores)
        missed = sum(r.request_id.endswith("+") and r.cached_tokens < r.prompt_len / 2
                     for r in reqs)  # fmt: skip
        ttft = sorted((r.first_token or 0.0) - r.arrival for r in reqs)
        p50, p90 = (ttft[int(q * (len(ttft) - 1))] * a.time_scale * 1000 for q in (0.5, 0.9))
        print(f"{a.workload} {a.rate:g} req/s x {a.duration:g} s, belief {belief}: "
              f"{len(reqs)} requests, hit rate {hits / queries:.2f}, evicted blocks per engine "
              f"{fleet.evicted / a.engines:.0f}, missed on a believed holder {missed}, "
              f"TTFT p50 {p50:.0f} ms p90 {p90:.0f} ms, longest queue {fleet.max_waiting} "
              "requests")  # fmt: skip


if __name__ == "__main__":
    main()
