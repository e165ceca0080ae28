"""What the admission queue is built from: pool spec -> config, headers -> metadata, endpoints
-> instance views and slot numbers (the two must agree)."""

from __future__ import annotations

import pytest

from sagellm_core.api.common import Priority
from sagellm_core.api.pool import SchedulingSpec
from sagellm_router.admission_queue import QueueConfig, instance_views, metadata_from_request
from sagellm_router.admission_queue.sources import capacity
from sagellm_router.errors import ApiError
from sagellm_router.types import Endpoint, Role


def test_config_from_pool_spec() -> None:
    spec = SchedulingSpec.model_validate(
        {"policy": "priority", "maxQueueLength": 7, "queueTimeoutMs": 2500,
         "rateLimits": {"requestsPerMinute": 60, "tokensPerMinute": 1000}}
    )  # fmt: skip
    cfg = QueueConfig.from_spec(spec)
    assert (cfg.policy, cfg.max_queue_length, cfg.queue_timeout_s) == ("priority", 7, 2.5)
    assert (cfg.requests_per_minute, cfg.tokens_per_minute) == (60, 1000)
    with pytest.raises(ValueError, match="queue_timeout_s"):
        QueueConfig(queue_timeout_s=0)


def test_bad_header_becomes_a_400_naming_it() -> None:
    with pytest.raises(ApiError) as err:
        metadata_from_request({"x-priority": "asap"}, {}, SchedulingSpec(), now=0.0)
    assert (err.value.status, err.value.param) == (400, "x-priority")
    ok = metadata_from_request({"x-priority": "low"}, {"user": "u"}, SchedulingSpec(), now=1.0)
    assert (ok.priority, ok.user_id, ok.arrival_s) == (Priority.LOW, "u", 1.0)


def test_instance_views_from_endpoints() -> None:
    endpoints = [
        Endpoint("http://p", "p", Role.PREFILL),
        Endpoint("http://d1", "d1", Role.DECODE),
        Endpoint("http://d2", "d2", Role.DECODE, draining=True),
        Endpoint("http://d3", "d3", Role.DECODE, ready=False),
    ]
    views = instance_views(endpoints, max_concurrency=8, numbers=lambda url: (3.0, 0.0, 0.2))
    assert [(v.name, v.max_concurrency, v.in_flight, v.ttft_s) for v in views] == [
        ("http://d1", 8, 3, 0.2)
    ]
    general = instance_views(
        [Endpoint("http://g", "g")], max_concurrency=2, numbers=lambda url: (len(url), 0, None)
    )
    assert [v.name for v in general] == ["http://g"]


def numbers(url: str) -> tuple[float, float, float | None]:
    return float(len(url) % 5) + 0.4, 1.0, None


@pytest.mark.parametrize(
    "endpoints",
    [
        [],
        [Endpoint("http://g1", "g1"), Endpoint("http://g2", "g2", max_concurrency=3)],
        [Endpoint("http://g", "g", draining=True), Endpoint("http://h", "h", ready=False)],
        [Endpoint("http://p", "p", Role.PREFILL), Endpoint("http://dd", "d", Role.DECODE)],
        [Endpoint("http://g", "g"), Endpoint("http://d", "d", Role.DECODE)],
        [Endpoint("http://p", "p", Role.PREFILL)],  # prefill only: no slot holder
    ],
)
def test_capacity_lists_what_the_views_list_with_the_same_numbers(
    endpoints: list[Endpoint],
) -> None:
    views = instance_views(endpoints, max_concurrency=8, numbers=numbers)
    slots = capacity(endpoints, max_concurrency=8, numbers=numbers)
    assert slots == [(v.name, v.max_concurrency, v.in_flight) for v in views]
