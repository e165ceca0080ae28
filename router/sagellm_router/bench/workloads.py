"""Seeded workload generators for ``sagellm bench`` (pure: no I/O, no clock).

A workload is a list of ``Session``s. A session starts at ``start_s`` (seconds from the run's
start; starts follow a Poisson process) and sends its ``turns`` one after another: each turn is a
chat request whose messages are the system prompt, every earlier turn's user message and the
assistant reply actually received, then this turn's user message. A turn is sent ``think_s``
seconds after the previous reply finished. Single-turn workloads are sessions of one turn.

Text is made of short English words (one simulator token each, with their leading space), so
``tokens`` below are close to what the engines count. All randomness comes from one
``random.Random(seed)``: the same seed gives the same sessions, byte for byte.

Kinds (``WORKLOADS``):
* ``shared_prefix`` - RAG/agent-style chat: each of ``tenants`` (48) tenants has a long system
  prompt (instructions, tool specs, retrieved policy text) of ``prefix_tokens`` (1000-2000,
  fixed per tenant) shared by all its users; tenants are picked with a Zipf(1.1) popularity, so
  reuse is high but uneven, and all tenants' prefixes together (~72k tokens) exceed one engine's
  KV cache in the ``routing`` fleet: which engine holds which prefix matters. Short questions
  (20-60 tokens), short answers (32-96).
* ``kv_pressure`` - ``shared_prefix`` for long-context agents (a repository map and tool specs,
  or long retrieved documents, in every tenant's preamble): ``KV_PRESSURE_TENANTS`` (96)
  tenants with 4000-8000-token prefixes, Zipf(1.1), the same questions and answers. The
  prefixes add up to ~570k tokens, more than the whole ``routing`` fleet's KV (8 x 65k) and
  ~9x one engine's: once an engine has computed more than its KV it evicts idle prefixes and
  a router's memory of where it sent a prefix goes stale. How long that takes depends on the
  hit rate; at 80 % load with a cache-aware router 20 s runs were not enough (docs/benchmarks.md,
  "kv_pressure: engines that evict").
* ``multi_turn`` - conversations of 2-3 turns with a short system prompt; the context grows every
  turn (earlier turns are a prefix of later ones). Think time 0.05-0.25 s x ``time_scale``.
* ``long_doc`` - document Q&A: a long unique document (~``doc_tokens``) plus a question and a
  short answer; a few follow-up questions per document reuse it.
* ``short_chat`` - short unique prompts and answers (no reuse; pure load balancing).
* ``long_prompt`` - summarisation/extraction: one unique 1500-4000-token prompt, 16-64-token
  answer (prefill-heavy; for prefill/decode separation).
* ``pd_mixed`` - 30 % ``long_prompt`` requests, 70 % chat with 50-1200-token prompts
  (log-uniform: most are short, some RAG-sized, so prompt sizes around a PD threshold occur) and
  64-256-token answers (decode-heavy streams that long prefills interrupt).

A ``ClassMix`` assigns every session a traffic class (priority and TTFT SLO, sent as the
``x-priority`` and ``x-slo-ttft-ms`` headers).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

_WORD_TEXT = """
the of and to in is was for on that with as it by at from his an were are which this be or
has had not but first one their its new after who they have her she two been other when
there all into school time may years more most only over city some world would where later
up such used many can state about out known under made while year team then three both film
since well river group part found early people each season began area few last long large
near local small light model token cache block queue route fast slow node pool batch
"""
_WORDS = tuple(_WORD_TEXT.split())


@dataclass(frozen=True)
class TrafficClass:
    """A traffic class: its share of sessions, priority header and TTFT objective."""

    name: str
    share: float
    priority: str | None = None
    slo_ttft_ms: float | None = None

    def headers(self, time_scale: float) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.priority is not None:
            out["x-priority"] = self.priority
        if self.slo_ttft_ms is not None:
            out["x-slo-ttft-ms"] = f"{self.slo_ttft_ms * time_scale:.0f}"
        return out


DEFAULT_MIX = (TrafficClass("default", 1.0),)
SLO_MIX = (
    TrafficClass("interactive", 0.3, "HIGH", 300.0),
    TrafficClass("standard", 0.5, "NORMAL", 1500.0),
    TrafficClass("batch", 0.2, "LOW", 10000.0),
)
# the ``slo`` scenario: 20 % HIGH with a tight TTFT objective, the rest loose or none
OVERLOAD_MIX = (
    TrafficClass("high", 0.2, "HIGH", 300.0),
    TrafficClass("normal", 0.5, "NORMAL", 5000.0),
    TrafficClass("low", 0.3, "LOW", None),
)


@dataclass(frozen=True)
class Turn:
    user: str
    max_tokens: int


@dataclass(frozen=True)
class Session:
    """One conversation: when it starts, its system prompt and turns, and its class."""

    sid: int
    start_s: float
    system: str
    turns: tuple[Turn, ...]
    think_s: float = 0.0
    tenant: int = 0
    klass: str = "default"
    headers: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WorkloadParams:
    """Knobs shared by the generators; ``rate`` is sessions per second (Poisson)."""

    rate: float
    duration_s: float
    seed: int = 0
    time_scale: float = 1.0
    tenants: int = 48  # shared_prefix's (kv_pressure has its own, fixed)
    prefix_tokens: tuple[int, int] = (1000, 2000)
    doc_tokens: int = 3000
    salt: str = ""  # prepended to every system prompt: a fresh prefix-cache namespace per run
    mix: tuple[TrafficClass, ...] = DEFAULT_MIX

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.duration_s <= 0:
            raise ValueError(f"rate and duration must be > 0, got {self.rate}, {self.duration_s}")
        if not self.mix or abs(sum(c.share for c in self.mix) - 1.0) > 1e-6:
            raise ValueError("traffic class shares must sum to 1")


def words(rng: random.Random, n: int) -> str:
    """``n`` random words, each with a leading space (one simulator token each)."""
    return "".join(" " + rng.choice(_WORDS) for _ in range(n))


def poisson_starts(rng: random.Random, rate: float, duration_s: float) -> list[float]:
    """Arrival times of a Poisson process of ``rate`` per second within ``[0, duration_s)``."""
    starts, t = [], rng.expovariate(rate)
    while t < duration_s:
        starts.append(t)
        t += rng.expovariate(rate)
    return starts


def zipf_weights(n: int, s: float = 1.1) -> list[float]:
    return [1.0 / (k**s) for k in range(1, n + 1)]


def _pick_class(rng: random.Random, mix: Sequence[TrafficClass]) -> TrafficClass:
    return rng.choices(list(mix), weights=[c.share for c in mix])[0]


SessionBody = Callable[[random.Random, WorkloadParams, int], tuple[int, str, tuple[Turn, ...]]]


def _tenant_chat(
    rng: random.Random, tenants: int, prefix_tokens: tuple[int, int], name: str
) -> tuple[int, str, tuple[Turn, ...]]:
    """A Zipf-popular tenant's fixed preamble (seeded by ``name`` and the tenant), a short
    question and answer."""
    tenant = rng.choices(range(tenants), weights=zipf_weights(tenants))[0]
    own = random.Random(f"{name}{tenant}")
    system = f"Tenant {tenant} assistant. Rules:" + words(own, own.randint(*prefix_tokens))
    return tenant, system, (Turn(words(rng, rng.randint(20, 60)), rng.randint(32, 96)),)


def _shared_prefix(
    rng: random.Random, p: WorkloadParams, _: int
) -> tuple[int, str, tuple[Turn, ...]]:
    return _tenant_chat(rng, p.tenants, p.prefix_tokens, "t")


KV_PRESSURE_TENANTS = 96
KV_PRESSURE_PREFIX_TOKENS = (4000, 8000)


def _kv_pressure(
    rng: random.Random, p: WorkloadParams, _: int
) -> tuple[int, str, tuple[Turn, ...]]:
    return _tenant_chat(rng, KV_PRESSURE_TENANTS, KV_PRESSURE_PREFIX_TOKENS, "kv")


def _multi_turn(
    rng: random.Random, p: WorkloadParams, sid: int
) -> tuple[int, str, tuple[Turn, ...]]:
    system = "You are a helpful assistant. Be brief:" + words(rng, 60)
    turns = tuple(
        Turn(words(rng, rng.randint(60, 200)), rng.randint(24, 64))
        for _ in range(rng.randint(2, 3))
    )
    return sid, system, turns


def _long_doc(rng: random.Random, p: WorkloadParams, sid: int) -> tuple[int, str, tuple[Turn, ...]]:
    doc = f"Document {sid}:" + words(rng, int(p.doc_tokens * rng.uniform(0.6, 1.4)))
    turns = tuple(
        Turn("Question:" + words(rng, 20), rng.randint(8, 32)) for _ in range(rng.randint(1, 3))
    )
    return sid, doc, turns


def _short_chat(
    rng: random.Random, p: WorkloadParams, sid: int
) -> tuple[int, str, tuple[Turn, ...]]:
    return (
        sid,
        "Assistant:" + words(rng, 10),
        (Turn(words(rng, rng.randint(20, 120)), rng.randint(16, 128)),),
    )


def _long_prompt(
    rng: random.Random, p: WorkloadParams, sid: int
) -> tuple[int, str, tuple[Turn, ...]]:
    text = f"Report {sid}. Summarise:" + words(rng, rng.randint(1500, 4000))
    return sid, text, (Turn("Summary please:" + words(rng, 10), rng.randint(16, 64)),)


def _pd_mixed(rng: random.Random, p: WorkloadParams, sid: int) -> tuple[int, str, tuple[Turn, ...]]:
    if rng.random() < 0.3:
        return _long_prompt(rng, p, sid)
    prompt = round(math.exp(rng.uniform(math.log(50), math.log(1200))))  # log-uniform
    chat = (Turn(words(rng, prompt), rng.randint(64, 256)),)
    return sid, "Assistant:" + words(rng, 10), chat


WORKLOADS: dict[str, SessionBody] = {
    "shared_prefix": _shared_prefix,
    "kv_pressure": _kv_pressure,
    "multi_turn": _multi_turn,
    "long_doc": _long_doc,
    "short_chat": _short_chat,
    "long_prompt": _long_prompt,
    "pd_mixed": _pd_mixed,
}
THINK_S = {"multi_turn": (0.05, 0.25), "long_doc": (0.05, 0.25)}


def generate(kind: str, params: WorkloadParams) -> list[Session]:
    """The sessions of workload ``kind`` (see the module docstring); deterministic per seed."""
    body = WORKLOADS.get(kind)
    if body is None:
        raise ValueError(f"unknown workload {kind!r}; choose one of {sorted(WORKLOADS)}")
    rng = random.Random(f"{kind}/{params.seed}")
    think_lo, think_hi = THINK_S.get(kind, (0.0, 0.0))
    sessions = []
    for sid, start in enumerate(poisson_starts(rng, params.rate, params.duration_s)):
        tenant, system, turns = body(rng, params, sid)
        klass = _pick_class(rng, params.mix)
        sessions.append(
            Session(
                sid=sid, start_s=start, system=params.salt + system, turns=turns,
                think_s=rng.uniform(think_lo, think_hi) * params.time_scale, tenant=tenant,
                klass=klass.name, headers=klass.headers(params.time_scale),
            )
        )  # fmt: skip
    return sessions


def mean_turns(kind: str, seed: int = 0) -> float:
    """Average number of requests per session of ``kind`` (from a 200-session sample)."""
    sample = generate(kind, WorkloadParams(rate=200.0, duration_s=1.0, seed=seed))
    return sum(len(s.turns) for s in sample) / max(1, len(sample))
