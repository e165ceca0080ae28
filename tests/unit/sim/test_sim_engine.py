"""Engine core on a virtual clock: ordering properties of the performance model.

These assert *orderings* (longer uncached prompt -> later first token, ...) on simulated time,
never wall-clock thresholds.
"""

from __future__ import annotations

import pytest

from sagellm_sim.engine import EngineCore, SimRequest, Status
from sagellm_sim.kvcache import KVCache, block_hashes
from sagellm_sim.offline import replay
from sagellm_sim.profiles import CostModel, Parallelism, get_profile

BS = 16


def make_core(blocks: int = 4096, max_seqs: int = 256, budget: int = 8192,
              prefix: bool = True, chunked: bool = True) -> EngineCore:  # fmt: skip
    cost = CostModel(get_profile("llama-3.1-8b-h100"), Parallelism())
    return EngineCore(cost, KVCache(blocks, BS, prefix), max_seqs, budget, chunked)


def req(rid: str, prompt: list[int], out: int = 4, at: float = 0.0) -> SimRequest:
    return SimRequest(rid, prompt, max_tokens=out, output_len=out, arrival=at,
                      block_hashes=block_hashes(prompt, BS))  # fmt: skip


def ttft(r: SimRequest) -> float:
    assert r.first_token is not None
    return r.first_token - r.arrival


def prompt(n: int, seed: int = 0) -> list[int]:
    return [(seed * 7919 + i) % 50000 for i in range(n)]


def test_ttft_grows_with_uncached_prompt_length() -> None:
    results = []
    for n in (64, 512, 2048, 8000):
        r = req("r", prompt(n))
        replay(make_core(), [r])
        results.append(ttft(r))
    assert results == sorted(results)
    assert results[0] < results[-1]


def test_repeated_long_prompt_hits_the_prefix_cache_and_starts_sooner() -> None:
    core = make_core()
    first, second = req("a", prompt(4000)), req("b", prompt(4000), at=10.0)
    replay(core, [first, second])
    assert second.cached_tokens == (4000 - 1) // BS * BS
    assert ttft(second) < ttft(first)
    assert core.counters.prefix_queries == 8000
    assert core.counters.prefix_hits == second.cached_tokens


def test_different_prompt_gets_no_prefix_hit() -> None:
    core = make_core()
    a, b = req("a", prompt(1000, 1)), req("b", prompt(1000, 2), at=10.0)
    replay(core, [a, b])
    assert b.cached_tokens == 0
    assert core.counters.prefix_hits == 0


def test_prefix_caching_off_means_no_hits() -> None:
    core = make_core(prefix=False)
    a, b = req("a", prompt(1000)), req("b", prompt(1000), at=10.0)
    replay(core, [a, b])
    assert b.cached_tokens == 0


def test_inter_token_latency_grows_with_concurrency() -> None:
    means = []
    for concurrency in (1, 32, 256):
        reqs = [req(f"r{i}", prompt(512, i), out=64) for i in range(concurrency)]
        trace = replay(make_core(), reqs)
        gaps = trace.itl("r0")[8:]  # steady decode, all prefills done
        means.append(sum(gaps) / len(gaps))
    assert means == sorted(means)
    assert means[0] < means[-1]


def test_full_kv_cache_queues_requests() -> None:
    core = make_core(blocks=64)  # 1024 tokens of KV
    reqs = [req(f"r{i}", prompt(300, i), out=32) for i in range(8)]
    trace = replay(core, reqs)
    assert trace.max_waiting > 0
    assert trace.max_running < 8
    assert all(r.status is Status.FINISHED for r in reqs)


def test_growing_decodes_preempt_the_newest_request_and_all_still_finish() -> None:
    core = make_core(blocks=12)  # 192 tokens; two 60-token prompts growing to 160 each
    reqs = [req("old", prompt(60, 1), out=100), req("new", prompt(60, 2), out=100)]
    replay(core, reqs)
    assert core.counters.preemptions > 0
    assert reqs[1].num_preemptions > 0
    assert reqs[0].num_preemptions == 0
    assert all(r.status is Status.FINISHED for r in reqs)
    assert core.cache.num_free == 12 or core.cache.usage == 0.0


def test_max_num_seqs_bounds_the_batch() -> None:
    core = make_core(max_seqs=4)
    trace = replay(core, [req(f"r{i}", prompt(32, i), out=8) for i in range(10)])
    assert trace.max_running == 4


def test_chunked_prefill_respects_the_token_budget() -> None:
    core = make_core(budget=512)
    r = req("long", prompt(2000), out=2)
    core.add(r)
    chunks = []
    now = 0.0
    while r.first_token is None:
        batch = core.schedule(now)
        chunks.append(sum(n for _, n in batch.items))
        now += core.cost.step_seconds(batch.work)
        core.complete(batch, now)
    assert chunks == [512, 512, 512, 464]


def test_without_chunked_prefill_a_prompt_is_scheduled_whole() -> None:
    """Two 400-token prompts and a 512-token budget: chunked prefill splits the second one
    over two steps; without it the second waits and runs whole in the next step."""

    def first_step_tokens(chunked: bool) -> list[int]:
        core = make_core(budget=512, chunked=chunked)
        for i in range(2):
            core.add(req(f"r{i}", prompt(400, i), out=2))
        return [n for _, n in core.schedule(0.0).items]

    assert first_step_tokens(chunked=True) == [400, 112]
    assert first_step_tokens(chunked=False) == [400]


def test_decode_runs_alongside_a_long_prefill() -> None:
    core = make_core(budget=256)
    short, long_ = req("short", prompt(16, 1), out=20), req("long", prompt(4000, 2), at=0.001)
    trace = replay(core, [short, long_])
    assert long_.first_token is not None
    before = [t for t in trace.token_times["short"] if t < long_.first_token]
    assert len(before) >= 10  # decoding continued during the chunked long prefill


def test_remote_prefill_skips_prefill_compute_after_transfer() -> None:
    local, remote = req("l", prompt(6000)), req("r", prompt(6000, 3))
    remote.remote_prefill, remote.ready_at = True, 0.05
    replay(make_core(), [local])
    replay(make_core(), [remote])
    assert ttft(remote) >= 0.05
    assert ttft(remote) < ttft(local)
    assert remote.cached_tokens == 0


def test_held_blocks_stay_allocated_until_released() -> None:
    core = make_core(blocks=100)
    r = req("p", prompt(160), out=1)
    r.hold_blocks = True
    replay(core, [r])
    assert r.status is Status.FINISHED
    assert len(r.blocks) == 10
    assert core.cache.num_free == 90
    core.release_held(r)
    assert core.cache.num_free == 100


def test_abort_frees_blocks_of_running_and_removes_waiting() -> None:
    core = make_core(blocks=100, max_seqs=1)
    a, b = req("a", prompt(100, 1), out=50), req("b", prompt(100, 2), out=50)
    core.add(a)
    core.add(b)
    core.schedule(0.0)
    assert a.status is Status.RUNNING
    assert b.status is Status.WAITING
    core.abort(a)
    core.abort(b)
    assert not core.has_work()
    assert core.cache.num_free == 100


@pytest.mark.parametrize(("seqs", "budget"), [(0, 10), (10, 0)])
def test_bad_limits_are_rejected(seqs: int, budget: int) -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        make_core(max_seqs=seqs, budget=budget)
