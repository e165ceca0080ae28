"""``EngineCore.pending_prompt_tokens``: the prefix an engine will hold once its waiting and
running requests have computed their prompts (what ``POST /sim/cached_prefix`` answers as
``cached_tokens_with_pending``), next to ``cached_prompt_tokens`` (the cache now).

Each case drives a core on a virtual clock into one state, then asks both questions about a
probe that shares a 1600-token system prompt with the earlier traffic.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sagellm_sim.engine import EngineCore, SimRequest
from sagellm_sim.kvcache import KVCache, block_hashes
from sagellm_sim.profiles import CostModel, Parallelism, get_profile

BS = 16
SYSTEM = [1000 + i for i in range(1600)]  # 100 full blocks
PROBE = [*SYSTEM, *range(50_000, 50_040)]  # the system prompt and another question


def make_core(blocks: int = 4096, budget: int = 8192, prefix: bool = True) -> EngineCore:
    cost = CostModel(get_profile("llama-3.1-8b-h100"), Parallelism())
    return EngineCore(cost, KVCache(blocks, BS, prefix), 256, budget)


def req(rid: str, prompt: list[int]) -> SimRequest:
    return SimRequest(rid, prompt, max_tokens=4, output_len=4, arrival=0.0,
                      block_hashes=block_hashes(prompt, BS))  # fmt: skip


def step(core: EngineCore, now: float) -> float:
    batch = core.schedule(now)
    end = now + core.cost.step_seconds(batch.work)
    core.complete(batch, end)
    return end


def run_to_idle(core: EngineCore) -> None:
    now = 0.0
    while core.has_work():
        now = step(core, now)


def question(n: int) -> list[int]:
    return [*SYSTEM, *range(60_000 + 100 * n, 60_000 + 100 * n + 30)]


def cached(core: EngineCore) -> None:  # a finished request left the system prompt cached
    core.add(req("a", question(1)))
    run_to_idle(core)


def queued(core: EngineCore) -> None:  # waiting, never scheduled
    core.add(req("a", question(1)))


def running(core: EngineCore) -> None:  # admitted, first 512-token chunk computed
    core.add(req("a", question(1)))
    step(core, 0.0)


def evicted(core: EngineCore) -> None:  # cached, then another prompt needed every block
    cached(core)
    core.add(req("b", [7 + i for i in range(200 * BS)]))
    step(core, 1.0)


def queued_other(core: EngineCore) -> None:  # a waiting request sharing nothing with the probe
    core.add(req("b", [7 + i for i in range(1000)]))


def cached_head_queued_tail(core: EngineCore) -> None:  # half cached, the whole system queued
    core.add(req("a", SYSTEM[:800]))
    run_to_idle(core)
    core.add(req("b", question(2)))


CASES: list[tuple[str, Callable[[EngineCore], None], dict[str, int], int, int]] = [
    ("idle engine", lambda core: None, {}, 0, 0),
    ("cached", cached, {}, 1600, 1600),
    ("queued", queued, {}, 0, 1600),
    ("running, mid-prefill", running, {"budget": 512}, 512, 1600),
    ("evicted", evicted, {"blocks": 200}, 0, 0),
    ("queued, nothing shared", queued_other, {}, 0, 0),
    ("cached head, queued rest", cached_head_queued_tail, {}, 800, 1600),
    ("prefix caching off", queued, {"prefix": False}, 0, 0),
]


@pytest.mark.parametrize(("setup", "core_args", "now", "with_pending"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])  # fmt: skip
def test_cached_now_and_with_pending(
    setup: Callable[[EngineCore], None], core_args: dict[str, int], now: int, with_pending: int
) -> None:
    core = make_core(**core_args)  # type: ignore[arg-type]
    setup(core)
    hashes = block_hashes(PROBE, BS)
    assert core.cached_prompt_tokens(hashes, len(PROBE)) == now
    assert core.pending_prompt_tokens(hashes, len(PROBE)) == with_pending


def test_with_pending_is_what_the_probe_then_finds_cached() -> None:
    core = make_core()
    queued(core)
    expected = core.pending_prompt_tokens(block_hashes(PROBE, BS), len(PROBE))
    run_to_idle(core)
    probe = req("p", PROBE)
    core.add(probe)
    run_to_idle(core)
    assert probe.cached_tokens == expected == 1600


def test_never_counts_the_last_prompt_token() -> None:
    core = make_core()
    core.add(req("a", SYSTEM))  # the probe is exactly the queued prompt: 100 full blocks
    assert core.pending_prompt_tokens(block_hashes(SYSTEM, BS), len(SYSTEM)) == 99 * BS
