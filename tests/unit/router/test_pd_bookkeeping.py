"""The PD prefill leg is booked on the proxy's own path: the same in-flight accounting while
it runs, and the same ejection reasons when the prefill engine fails as when an engine fails
a plain request."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from pipeline_fakes import PARAMS, Answer, ScriptedUpstream, complete, pd_pool, state_with

from sagellm_router.errors import ApiError
from sagellm_router.state import RouterState
from sagellm_router.upstream import UpstreamError

LONG = "a long prompt that goes prefill-then-decode " * 20
HEALTH = {"failure_threshold": 1}
GENERAL = {"name": "g", "model": "m", "endpoints": [{"url": "http://p", "instance": "P"}]}


def sample(state: RouterState, name: str, **labels: str) -> float:
    return state.metrics.registry.get_sample_value(name, labels) or 0.0


def ejections(state: RouterState, pool: str) -> dict[str, float]:
    """Ejection counts of endpoint P by reason."""
    out = {}
    for metric in state.metrics.registry.collect():
        for s in metric.samples:
            if s.name == "sagellm_router_endpoint_ejections_total" and s.labels["pool"] == pool:
                out[s.labels["reason"]] = s.value
    return out


async def test_the_prefill_leg_is_counted_in_flight_while_it_runs() -> None:
    state = state_with(pd_pool(threshold=10))
    seen: list[tuple[str, float, int]] = []

    def during(url: str) -> None:
        gauge = sample(state, "sagellm_router_in_flight_requests", pool="pd", endpoint="P")
        seen.append((url, gauge, state.tracker.in_flight(url)))

    upstream = ScriptedUpstream({"http://p": Answer(body=PARAMS)}, during=during)
    down = await complete(state, upstream, LONG)
    assert down.headers["X-Sagellm-Prefill-Instance"] == "P"
    assert seen[0] == ("http://p", 1.0, 1)  # the prefill leg, like any attempt
    assert sample(state, "sagellm_router_in_flight_requests", pool="pd", endpoint="P") == 0
    assert state.tracker.in_flight("http://p") == 0
    assert state.tracker.counters("http://p").ttft_ewma_s is not None  # its answer time


FAILURES = [
    pytest.param(UpstreamError("connect_error", "refused"), id="connect_error"),
    pytest.param(UpstreamError("disconnected", "reset"), id="disconnected"),
    pytest.param(Answer(status=503, body=b"{}"), id="status_503"),
]


@pytest.mark.parametrize("failure", FAILURES)
async def test_a_failing_prefill_engine_is_ejected_with_the_proxys_reason(
    failure: object,
) -> None:
    plain = state_with(GENERAL, health=HEALTH, retries={"max_attempts": 1})
    with contextlib.suppress(ApiError):  # the plain request fails: nowhere else to go
        await complete(plain, ScriptedUpstream({"http://p": failure}), "hi")
    (reason,) = ejections(plain, "g")  # what the proxy calls this failure

    state = state_with(pd_pool(threshold=10), health=HEALTH)
    down = await complete(state, ScriptedUpstream({"http://p": failure}), LONG)
    assert down.status == 200, "served decode-only"
    assert ejections(state, "pd") == {reason: 1.0}
    fallback = sample(state, "sagellm_router_pd_fallbacks_total", pool="pd",
                      reason=f"prefill_{reason}")  # fmt: skip
    assert fallback == 1.0
    assert sample(state, "sagellm_router_in_flight_requests", pool="pd", endpoint="P") == 0


async def test_a_prefill_leg_past_its_timeout_ejects_like_a_first_byte_timeout() -> None:
    state = state_with(pd_pool(threshold=10), pd={"prefill_timeout_s": 0.05})
    hung = asyncio.Event()  # never set
    down = await complete(state, ScriptedUpstream({"http://p": hung}), LONG)
    assert down.status == 200
    assert ejections(state, "pd") == {"first_byte_timeout": 1.0}  # at once, like the proxy's


@pytest.mark.parametrize("decode_routing", ["round_robin", "prefix_aware"])
async def test_pd_and_prefix_aware_share_the_pools_prefix_index(decode_routing: str) -> None:
    state = state_with(pd_pool(threshold=10), pd={"decode_routing": decode_routing})
    index = state.strategies.prefix_index("pd")
    strategy = state.strategies.get("pd", "prefix_aware")
    assert getattr(strategy, "index", None) is index
    assert index.cached_chars("http://d", LONG) == 0
    await complete(state, ScriptedUpstream({"http://p": Answer(body=PARAMS)}), LONG)
    # whichever strategy picked the decode instance, the pool's one index learned it
    assert index.cached_chars("http://d", LONG) == len(LONG) // 64 * 64
    assert strategy.cached_chars("http://d", LONG) == index.cached_chars("http://d", LONG)
