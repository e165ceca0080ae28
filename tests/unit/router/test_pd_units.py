"""PD pieces without I/O: leg bodies, transfer-param parsing, the threshold tuner."""

from __future__ import annotations

import orjson
import pytest

from sagellm_router.pd.legs import (
    PREFILL_REQUEST_PARAMS,
    decode_body,
    prefill_body,
    transfer_params,
)
from sagellm_router.pd.orchestrator import disaggregated
from sagellm_router.pd.threshold import AutoParams, ThresholdTuner
from sagellm_router.types import Endpoint, PoolSnapshot, Role


def test_prefill_body_follows_the_nixl_protocol() -> None:
    body = {"model": "m", "prompt": "p", "max_tokens": 50, "max_completion_tokens": 50,
            "stream": True, "stream_options": {"include_usage": True}, "min_tokens": 3}  # fmt: skip
    leg = orjson.loads(prefill_body(body))
    assert leg == {"model": "m", "prompt": "p", "max_tokens": 1, "max_completion_tokens": 1,
                   "stream": False, "kv_transfer_params": PREFILL_REQUEST_PARAMS}  # fmt: skip
    assert "max_completion_tokens" not in orjson.loads(prefill_body({"prompt": "p"}))
    assert body["max_tokens"] == 50, "the client's body is not modified"


def test_decode_body_is_the_original_plus_params() -> None:
    body = {"model": "m", "prompt": "p", "stream": True, "max_tokens": 9}
    params = {"do_remote_prefill": True, "remote_block_ids": [1, 2]}
    assert orjson.loads(decode_body(body, params)) == {**body, "kv_transfer_params": params}


@pytest.mark.parametrize(
    ("status", "payload", "reason"),
    [
        (200, b'{"kv_transfer_params": {"remote_engine_id": "e"}}', ""),
        (200, b'{"kv_transfer_params": null}', "no_kv_transfer_params"),
        (200, b'{"choices": []}', "no_kv_transfer_params"),
        (200, b"not json", "prefill_bad_json"),
        (200, b"[1]", "no_kv_transfer_params"),
        (503, b"{}", "prefill_status_503"),
        (400, b'{"error": {}}', "prefill_status_400"),
    ],
)
def test_transfer_params(status: int, payload: bytes, reason: str) -> None:
    params, why = transfer_params(status, payload)
    assert why == reason
    assert (params is not None) == (reason == "")


@pytest.mark.parametrize(
    ("uncached", "threshold", "expected"), [(0, 100, False), (99, 100, False), (100, 100, True),
                                            (5000, 100, True), (0, 0, True)],
)  # fmt: skip
def test_fixed_threshold_decides_by_uncached_tokens(
    uncached: int, threshold: int, expected: bool
) -> None:
    assert ThresholdTuner(float(threshold)).decide(uncached) is expected


def feed(tuner: ThresholdTuner, uncached: int, pd_cost: float, direct_cost: float, n: int) -> None:
    for _ in range(n):
        tuner.observe(uncached, True, pd_cost, None, now=100.0)
        tuner.observe(uncached, False, direct_cost, None, now=100.0)


PARAMS = AutoParams(min_samples=4, step=2.0, margin=0.1, cooldown_s=10.0, min_tokens=50)


@pytest.mark.parametrize(
    ("uncached", "pd_cost", "direct_cost", "after"),
    [
        (300, 0.10, 0.20, 200.0),  # just below 400: PD clearly cheaper -> lower
        (500, 0.30, 0.10, 800.0),  # just above: direct clearly cheaper -> raise
        (300, 0.19, 0.20, 400.0),  # within the margin -> stay
        (100, 0.01, 0.90, 400.0),  # outside the boundary buckets -> ignored
    ],
)
def test_auto_threshold_moves_one_bounded_step(
    uncached: int, pd_cost: float, direct_cost: float, after: float
) -> None:
    tuner = ThresholdTuner(400.0, auto=True, params=PARAMS)
    feed(tuner, uncached, pd_cost, direct_cost, 10)
    assert tuner.threshold == after
    assert tuner.moves == (after != 400.0)
    if tuner.moves:
        assert "moved to" in tuner.status()["reason"]  # type: ignore[operator]


def test_auto_threshold_waits_for_cooldown_and_respects_bounds() -> None:
    tuner = ThresholdTuner(100.0, auto=True, params=PARAMS)
    feed(tuner, 60, 0.1, 0.5, 4)
    assert tuner.threshold == 50.0
    feed(tuner, 30, 0.1, 0.5, 4)  # still in cooldown at the same time
    assert tuner.threshold == 50.0
    for _ in range(4):
        tuner.observe(30, True, 0.1, None, now=200.0)
        tuner.observe(30, False, 0.5, None, now=200.0)
    assert tuner.threshold == 50.0, "never below min_tokens"


def test_auto_explores_the_other_path_near_the_threshold() -> None:
    tuner = ThresholdTuner(400.0, auto=True, params=AutoParams(explore_every=4))
    below = [tuner.decide(350) for _ in range(8)]
    assert below.count(True) == 2, "every 4th boundary request tries PD"
    assert all(tuner.decide(5000) for _ in range(5)), "far above: always PD"
    assert ThresholdTuner(400.0).decide(300) is False, "Fixed mode never explores"


def test_itl_counts_in_the_cost() -> None:
    tuner = ThresholdTuner(400.0, auto=True, params=AutoParams(min_samples=2, itl_tokens=10))
    for _ in range(2):  # equal TTFT, but direct streams 10x slower -> PD wins below
        tuner.observe(350, True, 0.1, 0.001, now=50.0)
        tuner.observe(350, False, 0.1, 0.01, now=50.0)
    assert tuner.threshold < 400.0


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        ((Role.PREFILL, Role.DECODE), True),
        ((Role.DECODE, Role.PREFILL, Role.DECODE), True),
        ((Role.PREFILL, Role.DECODE, Role.GENERAL), False),
        ((Role.GENERAL, Role.GENERAL), False),
        ((Role.DECODE,), False),
        ((Role.PREFILL,), False),
        ((), False),
    ],
)
def test_a_pool_is_disaggregated_with_prefill_and_decode_and_no_general(
    roles: tuple[Role, ...], expected: bool
) -> None:
    endpoints = tuple(Endpoint(f"http://e{i}", f"e{i}", role) for i, role in enumerate(roles))
    assert disaggregated(PoolSnapshot("p", "m", endpoints=endpoints)) is expected
