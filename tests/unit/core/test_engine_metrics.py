"""Requests held by an engine, from its vLLM /metrics page."""

from __future__ import annotations

import pytest

from sagellm_core.engine_metrics import requests_in_engine

PAGE = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="my model {v2}"} 3.0
vllm:num_requests_running{engine="1",model_name="my model {v2}"} 2.0
vllm:num_requests_waiting 7 1700000000000
vllm:num_requests_running_extra 99
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
"""


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        (PAGE, 12.0),  # summed over engines, running + waiting; look-alike names ignored
        ('vllm:num_requests_running{a="1"} 0\nvllm:num_requests_waiting{a="1"} 0\n', 0.0),
        ("vllm:num_requests_waiting 0\n", 0.0),  # one series is enough to know
        ("python_gc_objects_collected_total 1\n", None),  # not an engine page
        ("", None),
        ('vllm:num_requests_running{a="1"} oops\n', None),  # unparsable value is not "idle"
    ],
)
def test_requests_in_engine(text: str, expect: float | None) -> None:
    assert requests_in_engine(text) == expect
