"""The PD threshold: which prompts go prefill-then-decode, fixed or tuned online (pure).

Inputs: the request's *uncached* prompt tokens (prompt minus the prefix the chosen decode
instance likely holds), and, after it finished, its path (PD or direct) and measured cost
``TTFT + itl_tokens x mean ITL`` (seconds, from dispatch, i.e. after queueing).

``Fixed``: PD iff uncached >= threshold. ``Auto`` is a local search around the threshold ``T``:

- Two buckets next to it: *below* = ``[T/step, T)`` and *above* = ``[T, T*step)``.
- Requests in those buckets take their normal path, except every ``explore_every``-th one,
  which takes the other path, so both paths have fresh samples on both sides of ``T``.
- Mean cost is kept per (bucket, path) since the last move. Once both paths of a bucket have
  ``min_samples`` and ``cooldown_s`` passed since the last move:
  *below*: PD cheaper than direct by ``margin`` -> lower ``T`` to ``T/step`` (PD pays off for
  shorter prompts too); *above*: direct cheaper than PD by ``margin`` -> raise ``T`` to
  ``T*step`` (these prompts are cheaper to prefill locally). ``T`` stays in
  ``[min_tokens, max_tokens]``; every move clears the samples (the buckets moved).

Each move is one bounded step, so a noisy window can shift the threshold by at most a factor
``step`` per ``cooldown_s``. The request's own ITL is the only decode-side signal: the harm a
long local prefill does to *other* streams on the decode engine is not measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Key = tuple[str, bool]  # (bucket "below"/"above", took PD)


@dataclass(frozen=True, slots=True)
class AutoParams:
    min_tokens: int = 32
    max_tokens: int = 32768
    step: float = 1.25
    min_samples: int = 8
    explore_every: int = 8
    margin: float = 0.1
    itl_tokens: int = 32
    cooldown_s: float = 5.0


@dataclass(slots=True)
class _Mean:
    n: int = 0
    total: float = 0.0

    def add(self, value: float) -> None:
        self.n += 1
        self.total += value

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0


@dataclass
class ThresholdTuner:
    threshold: float
    auto: bool = False
    params: AutoParams = field(default_factory=AutoParams)
    reason: str = "configured"
    moves: int = 0
    _stats: dict[Key, _Mean] = field(default_factory=dict)
    _boundary_seen: int = 0
    _last_move_s: float | None = None

    def _bucket(self, uncached: int) -> str | None:
        t, step = self.threshold, self.params.step
        if t / step <= uncached < t:
            return "below"
        if t <= uncached < t * step:
            return "above"
        return None

    def decide(self, uncached: int) -> bool:
        """True: send prefill-then-decode; False: straight to decode."""
        pd = uncached >= self.threshold
        if self.auto and self._bucket(uncached) is not None:
            self._boundary_seen += 1
            if self._boundary_seen % self.params.explore_every == 0:
                return not pd  # explore the other path
        return pd

    def observe(
        self, uncached: int, took_pd: bool, ttft_s: float, itl_s: float | None, now: float
    ) -> None:
        """Record a finished request and move the threshold if the evidence says so."""
        bucket = self._bucket(uncached) if self.auto else None
        if bucket is None:
            return
        cost = ttft_s + self.params.itl_tokens * (itl_s or 0.0)
        self._stats.setdefault((bucket, took_pd), _Mean()).add(cost)
        self._maybe_move(now)

    def _ready(self, bucket: str) -> tuple[float, float] | None:
        pd, direct = self._stats.get((bucket, True)), self._stats.get((bucket, False))
        n = self.params.min_samples
        if pd is None or direct is None or pd.n < n or direct.n < n:
            return None
        return pd.mean, direct.mean

    def _maybe_move(self, now: float) -> None:
        p = self.params
        if self._last_move_s is not None and now - self._last_move_s < p.cooldown_s:
            return
        below, above = self._ready("below"), self._ready("above")
        if below is not None and below[0] < below[1] * (1 - p.margin):
            target = max(float(p.min_tokens), self.threshold / p.step)
            why = f"PD {below[0] * 1000:.0f} ms < direct {below[1] * 1000:.0f} ms just below"
        elif above is not None and above[1] < above[0] * (1 - p.margin):
            target = min(float(p.max_tokens), self.threshold * p.step)
            why = f"direct {above[1] * 1000:.0f} ms < PD {above[0] * 1000:.0f} ms just above"
        else:
            return
        if round(target) != round(self.threshold):
            self.reason = f"{why} {self.threshold:.0f} tokens; moved to {target:.0f}"
            self.threshold = target
            self.moves += 1
        self._stats.clear()
        self._last_move_s = now

    def status(self) -> dict[str, object]:
        samples = {f"{b}/{'pd' if pd else 'direct'}": m.n for (b, pd), m in self._stats.items()}
        return {
            "mode": "Auto" if self.auto else "Fixed",
            "threshold_tokens": round(self.threshold),
            "reason": self.reason,
            "moves": self.moves,
            "samples": samples,
        }
