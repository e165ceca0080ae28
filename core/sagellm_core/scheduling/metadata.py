"""Request metadata for scheduling, parsed from HTTP headers and the OpenAI body (pure).

Headers (case-insensitive) and what they set:

- ``x-request-id``: request id (printable ASCII, no spaces, <= 128 chars); generated when absent.
- ``x-user-id`` (else the body's ``user``): who is asking, for rate limits and fair share.
- ``x-priority``: ``CRITICAL``/``HIGH``/``NORMAL``/``LOW``/``BACKGROUND`` (any case) or ``0``-``4``.
- ``x-slo-ttft-ms``: time-to-first-token objective in milliseconds.
- ``x-slo-deadline-ms``: end-to-end deadline in milliseconds from arrival.
- ``x-cost-budget``: the most this request may cost (same currency as ``costPerGPUHour``).
- ``x-parallelism-hint``: the GPU width per instance the client prefers (a positive integer).

Absent values fall back to the pool's ``SchedulingSpec``. A bad value raises ``MetadataError``
naming the header; the router answers it with HTTP 400. The prompt's token count is taken when
something first reads it (``PromptTokens``).
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sagellm_core import tokens
from sagellm_core.api.common import Priority
from sagellm_core.api.pool import SchedulingSpec
from sagellm_core.tokens import TokenCounter, estimate_tokens

H_REQUEST_ID = "x-request-id"
H_USER_ID = "x-user-id"
H_PRIORITY = "x-priority"
H_SLO_TTFT = "x-slo-ttft-ms"
H_SLO_DEADLINE = "x-slo-deadline-ms"
H_COST_BUDGET = "x-cost-budget"
H_PARALLELISM = "x-parallelism-hint"

#: Priority bands, most urgent first; a band's index is its rank (0 = CRITICAL).
BANDS: tuple[Priority, ...] = (
    Priority.CRITICAL,
    Priority.HIGH,
    Priority.NORMAL,
    Priority.LOW,
    Priority.BACKGROUND,
)
ANONYMOUS = "anonymous"
#: Output tokens assumed when a request sets no ``max_tokens``.
DEFAULT_OUTPUT_TOKENS = 256
_MAX_MS = 86_400_000.0  # one day
_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
_USER_ID = re.compile(r"^[^\x00-\x1f\x7f]{1,256}$")


class PromptTokens:
    """A prompt's token count, counted the first time it is read.

    Counting is a regex pass over the whole prompt (~0.1 µs per character: tens of µs for a
    typical prompt, more than the rest of a request's admission); a policy, a limit or a PD
    decision that reads it pays it once, and a request that nobody asks about (fifo, no token
    rate limit, no PD) never does. Compares and hashes as its count.
    """

    __slots__ = ("_count", "_value")

    def __init__(self, value: int | Callable[[], int]) -> None:
        self._value: int | None = None
        self._count: Callable[[], int] | None = None
        if isinstance(value, int):
            self._value = value
        else:
            self._count = value

    @property
    def value(self) -> int:
        if self._value is None:
            assert self._count is not None
            self._value, self._count = self._count(), None  # the body is not kept past it
        return self._value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PromptTokens) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return f"PromptTokens({self.value})"


_NO_PROMPT = PromptTokens(0)


class MetadataError(ValueError):
    """A scheduling header (or body field) holds a value the router cannot accept."""

    def __init__(self, header: str, message: str) -> None:
        super().__init__(f"invalid {header}: {message}")
        self.header = header


@dataclass(frozen=True, slots=True)
class RequestMetadata:
    """What the scheduler knows about one request. Times are seconds on the router's clock.
    ``prompt`` is the prompt's size in tokens (read it as ``prompt_tokens``)."""

    request_id: str
    user_id: str = ANONYMOUS
    priority: Priority = Priority.NORMAL
    arrival_s: float = 0.0
    slo_ttft_ms: float | None = None
    slo_deadline_ms: float | None = None
    max_tokens: int | None = None
    prompt: PromptTokens = _NO_PROMPT
    cost_budget: float | None = None
    parallelism_hint: int | None = None

    @property
    def prompt_tokens(self) -> int:
        return self.prompt.value

    @property
    def band(self) -> int:
        """0 for CRITICAL ... 4 for BACKGROUND."""
        return BANDS.index(Priority(self.priority))

    @property
    def ttft_due_s(self) -> float | None:
        """When the first token must have arrived, or None without a TTFT objective."""
        if self.slo_ttft_ms is None:
            return None
        return self.arrival_s + self.slo_ttft_ms / 1000.0

    @property
    def deadline_s(self) -> float | None:
        """When the whole response must be done, or None without a deadline."""
        if self.slo_deadline_ms is None:
            return None
        return self.arrival_s + self.slo_deadline_ms / 1000.0

    @property
    def has_slo(self) -> bool:
        return self.slo_ttft_ms is not None or self.slo_deadline_ms is not None

    @property
    def output_tokens(self) -> int:
        return self.max_tokens if self.max_tokens is not None else DEFAULT_OUTPUT_TOKENS

    @property
    def expected_tokens(self) -> int:
        """Prompt plus expected output tokens: what rate limits and cost estimates charge."""
        return self.prompt_tokens + self.output_tokens


def parse_metadata(
    headers: Mapping[str, str],
    body: Mapping[str, object] | None,
    defaults: SchedulingSpec,
    *,
    now: float,
    count: TokenCounter = estimate_tokens,
    new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
) -> RequestMetadata:
    """Build ``RequestMetadata`` from headers, body and the pool's scheduling defaults.

    ``prompt_tokens`` is the body's prompt counted with ``count`` (``sagellm_core.tokens``; the
    engine's own tokenizer where the caller has it) when first read. Raises ``MetadataError``
    naming the offending header or field.
    """
    h = {k.lower(): v.strip() for k, v in headers.items()}
    body = body or {}
    ttft = _positive_ms(h, H_SLO_TTFT, defaults.slo_ttft_ms)
    deadline = _positive_ms(h, H_SLO_DEADLINE, defaults.slo_deadline_ms)
    if ttft is not None and deadline is not None and deadline < ttft:
        raise MetadataError(
            H_SLO_DEADLINE, f"deadline {deadline:g} ms is shorter than the TTFT SLO {ttft:g} ms"
        )
    return RequestMetadata(
        request_id=_request_id(h, new_id),
        user_id=_user_id(h, body),
        priority=_priority(h.get(H_PRIORITY), Priority(defaults.default_priority)),
        arrival_s=now,
        slo_ttft_ms=ttft,
        slo_deadline_ms=deadline,
        max_tokens=_max_tokens(body),
        prompt=PromptTokens(lambda: tokens.prompt_tokens(body, count)),
        cost_budget=_cost_budget(h.get(H_COST_BUDGET)),
        parallelism_hint=_parallelism(h.get(H_PARALLELISM)),
    )


def _request_id(h: Mapping[str, str], new_id: Callable[[], str]) -> str:
    value = h.get(H_REQUEST_ID)
    if value is None or value == "":
        return new_id()
    if not _REQUEST_ID.match(value):
        raise MetadataError(H_REQUEST_ID, "use 1-128 printable ASCII characters without spaces")
    return value


def _user_id(h: Mapping[str, str], body: Mapping[str, object]) -> str:
    value = h.get(H_USER_ID)
    where = H_USER_ID
    if value is None or value == "":
        raw = body.get("user")
        if raw is None or raw == "":
            return ANONYMOUS
        if not isinstance(raw, str):
            raise MetadataError("user", f"must be a string, got {type(raw).__name__}")
        value, where = raw, "user"
    if not _USER_ID.match(value):
        raise MetadataError(where, "use 1-256 characters without control characters")
    return value


def _priority(value: str | None, default: Priority) -> Priority:
    if value is None or value == "":
        return default
    if value.isdigit() and int(value) < len(BANDS):
        return BANDS[int(value)]
    try:
        return Priority(value.upper())
    except ValueError:
        names = ", ".join(p.value for p in BANDS)
        raise MetadataError(
            H_PRIORITY, f"{value!r} is not one of {names} (or 0-{len(BANDS) - 1})"
        ) from None


def _number(header: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise MetadataError(header, f"{value!r} is not a number") from None
    if not math.isfinite(number):
        raise MetadataError(header, f"{value!r} is not a finite number")
    return number


def _positive_ms(h: Mapping[str, str], header: str, default: int | None) -> float | None:
    value = h.get(header)
    if value is None or value == "":
        return None if default is None else float(default)
    ms = _number(header, value)
    if not 0 < ms <= _MAX_MS:
        raise MetadataError(header, f"{value!r} must be > 0 and <= {_MAX_MS:.0f} milliseconds")
    return ms


def _cost_budget(value: str | None) -> float | None:
    if value is None or value == "":
        return None
    budget = _number(H_COST_BUDGET, value)
    if budget < 0:
        raise MetadataError(H_COST_BUDGET, f"{value!r} must not be negative")
    return budget


def _parallelism(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or not 1 <= int(value) <= 1024:
        raise MetadataError(H_PARALLELISM, f"{value!r} must be an integer from 1 to 1024")
    return int(value)


def _max_tokens(body: Mapping[str, object]) -> int | None:
    """The output-token limit for scheduling estimates; a value that is not a positive integer
    counts as unset here: the engine answers it with its own 400, as vLLM words it."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
    return None
