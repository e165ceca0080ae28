"""Request metadata from headers, body and pool defaults."""

from __future__ import annotations

from typing import Any

import pytest

from sagellm_core.api.common import Priority
from sagellm_core.api.pool import SchedulingSpec
from sagellm_core.scheduling.metadata import (
    ANONYMOUS,
    MetadataError,
    PromptTokens,
    RequestMetadata,
    parse_metadata,
)
from sagellm_core.tokens import estimate_tokens

SPEC = SchedulingSpec()


def parse(
    headers: dict[str, str], body: dict[str, Any] | None = None, spec: SchedulingSpec = SPEC
) -> RequestMetadata:
    return parse_metadata(headers, body, spec, now=100.0, new_id=lambda: "generated")


@pytest.mark.parametrize(
    ("headers", "body", "field", "expected"),
    [
        ({}, None, "request_id", "generated"),
        ({"X-Request-Id": "abc-123"}, None, "request_id", "abc-123"),
        ({}, None, "user_id", ANONYMOUS),
        ({}, {"user": "bob"}, "user_id", "bob"),
        ({"x-user-id": "alice"}, {"user": "bob"}, "user_id", "alice"),
        ({}, None, "priority", Priority.NORMAL),
        ({"x-priority": "critical"}, None, "priority", Priority.CRITICAL),
        ({"x-priority": "Background"}, None, "priority", Priority.BACKGROUND),
        ({"x-priority": "1"}, None, "priority", Priority.HIGH),
        ({"x-slo-ttft-ms": "250"}, None, "slo_ttft_ms", 250.0),
        ({"x-slo-deadline-ms": "1500.5"}, None, "slo_deadline_ms", 1500.5),
        ({}, None, "slo_ttft_ms", None),
        ({"x-cost-budget": "0.002"}, None, "cost_budget", 0.002),
        ({"x-cost-budget": "0"}, None, "cost_budget", 0.0),
        ({"x-parallelism-hint": "4"}, None, "parallelism_hint", 4),
        ({}, {"max_tokens": 64}, "max_tokens", 64),
        ({}, {"max_completion_tokens": 32, "max_tokens": 64}, "max_tokens", 32),
        # not a positive integer: unset here; the engine answers it with vLLM's own 400
        ({}, {"max_tokens": 0}, "max_tokens", None),
        ({}, {"max_tokens": True}, "max_tokens", None),
        ({}, {"max_tokens": "ten"}, "max_tokens", None),
        ({}, {"prompt": "the quick brown fox"}, "prompt_tokens", 4),
        ({}, None, "arrival_s", 100.0),
    ],
)
def test_parses_field(
    headers: dict[str, str], body: dict[str, Any] | None, field: str, expected: object
) -> None:
    assert getattr(parse(headers, body), field) == expected


@pytest.mark.parametrize(
    ("headers", "body", "names"),
    [
        ({"x-priority": "urgent"}, None, "x-priority"),
        ({"x-priority": "7"}, None, "x-priority"),
        ({"x-slo-ttft-ms": "soon"}, None, "x-slo-ttft-ms"),
        ({"x-slo-ttft-ms": "0"}, None, "x-slo-ttft-ms"),
        ({"x-slo-ttft-ms": "-5"}, None, "x-slo-ttft-ms"),
        ({"x-slo-ttft-ms": "nan"}, None, "x-slo-ttft-ms"),
        ({"x-slo-deadline-ms": "inf"}, None, "x-slo-deadline-ms"),
        ({"x-slo-ttft-ms": "500", "x-slo-deadline-ms": "100"}, None, "x-slo-deadline-ms"),
        ({"x-cost-budget": "-1"}, None, "x-cost-budget"),
        ({"x-cost-budget": "cheap"}, None, "x-cost-budget"),
        ({"x-parallelism-hint": "0"}, None, "x-parallelism-hint"),
        ({"x-parallelism-hint": "2.5"}, None, "x-parallelism-hint"),
        ({"x-request-id": "has space"}, None, "x-request-id"),
        ({"x-request-id": "x" * 129}, None, "x-request-id"),
        ({"x-user-id": "a\x01b"}, None, "x-user-id"),
        ({}, {"user": 42}, "user"),
    ],
)
def test_invalid_value_names_the_header(
    headers: dict[str, str], body: dict[str, Any] | None, names: str
) -> None:
    with pytest.raises(MetadataError) as err:
        parse(headers, body)
    assert err.value.header == names
    assert names in str(err.value)


def test_pool_defaults_fill_absent_values_and_headers_override_them() -> None:
    spec = SchedulingSpec(default_priority=Priority.LOW, slo_ttft_ms=800, slo_deadline_ms=9000)
    meta = parse({}, None, spec)
    assert (meta.priority, meta.slo_ttft_ms, meta.slo_deadline_ms) == (Priority.LOW, 800, 9000)
    meta = parse({"x-priority": "HIGH", "x-slo-ttft-ms": "200"}, None, spec)
    assert (meta.priority, meta.slo_ttft_ms) == (Priority.HIGH, 200)


def test_derived_times_and_tokens() -> None:
    meta = parse({"x-slo-ttft-ms": "500", "x-slo-deadline-ms": "4000"}, {"max_tokens": 10})
    assert meta.ttft_due_s == pytest.approx(100.5)
    assert meta.deadline_s == pytest.approx(104.0)
    assert meta.has_slo
    assert meta.band == 2
    assert meta.expected_tokens == meta.prompt_tokens + 10


def test_prompt_tokens_are_counted_by_the_given_counter() -> None:
    body = {"prompt": "the quick brown fox"}
    assert parse({}, body).prompt_tokens == estimate_tokens("the quick brown fox") == 4
    meta = parse_metadata({}, body, SchedulingSpec(), now=0.0, count=lambda text: 1000)
    assert meta.prompt_tokens == 1000


def test_prompt_tokens_are_counted_once_and_only_when_read() -> None:
    counted: list[str] = []

    def count(text: str) -> int:
        counted.append(text)
        return 7

    meta = parse_metadata({}, {"prompt": "abc"}, SPEC, now=0.0, count=count)
    assert counted == []  # parsing alone does not count
    assert meta.prompt_tokens == 7
    assert meta.expected_tokens == 7 + meta.output_tokens
    assert counted == ["abc"]  # once, however often it is read


def test_metadata_compares_by_the_prompt_count() -> None:
    body = {"prompt": "the quick brown fox"}
    lazy = parse_metadata({}, body, SPEC, now=0.0, new_id=lambda: "r")
    known = RequestMetadata("r", arrival_s=0.0, max_tokens=None, prompt=PromptTokens(4))
    assert lazy == known
    assert hash(lazy) == hash(known)
    assert lazy != RequestMetadata("r", arrival_s=0.0, prompt=PromptTokens(5))
    assert "PromptTokens(4)" in repr(lazy)
