"""Per-user token-bucket rate limits: requests per minute and tokens per minute (pure).

A bucket holds up to ``capacity`` units and refills at ``capacity / 60`` per second. A request
passes when *both* buckets allow it, and only then is charged (no partial charge). A request
larger than a whole bucket passes once the bucket is full and leaves it in debt, so big
requests are slowed, never refused forever. A refusal carries ``retry_after_s``: when the
bucket will hold enough again.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    capacity: float
    level: float
    updated_s: float

    @property
    def rate_per_s(self) -> float:
        return self.capacity / 60.0

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated_s)
        self.level = min(self.capacity, self.level + elapsed * self.rate_per_s)
        self.updated_s = max(self.updated_s, now)

    def wait_s(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` may be taken (0 = now)."""
        self.refill(now)
        need = min(amount, self.capacity) - self.level
        return 0.0 if need <= 1e-9 else need / self.rate_per_s

    def take(self, amount: float) -> None:
        self.level -= amount


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    retry_after_s: float = 0.0
    reason: str = ""


_ALLOWED = RateDecision(True)


class UserRateLimiter:
    """Buckets per user for one pool; ``None`` limits disable that dimension."""

    def __init__(
        self,
        requests_per_minute: int | None,
        tokens_per_minute: int | None,
        *,
        max_users: int = 100_000,
    ) -> None:
        self.rpm = requests_per_minute
        self.tpm = tokens_per_minute
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._max_users = max_users

    def _bucket(self, user: str, kind: str, capacity: int, now: float) -> TokenBucket:
        bucket = self._buckets.get((user, kind))
        if bucket is None:
            if len(self._buckets) >= 2 * self._max_users:
                self.prune(now)
            bucket = self._buckets[(user, kind)] = TokenBucket(capacity, capacity, now)
        return bucket

    def check(self, user: str, tokens: int, now: float) -> RateDecision:
        """Charge one request of ``tokens`` tokens to ``user`` if both limits allow it."""
        if self.rpm is None and self.tpm is None:
            return _ALLOWED
        charges: list[tuple[TokenBucket, float]] = []
        worst: tuple[float, str] = (0.0, "")
        dims: tuple[tuple[str, int | None, float], ...] = (
            ("requests", self.rpm, 1.0),
            ("tokens", self.tpm, float(tokens)),
        )
        for kind, capacity, amount in dims:
            if capacity is None:
                continue
            bucket = self._bucket(user, kind, capacity, now)
            wait = bucket.wait_s(amount, now)
            charges.append((bucket, amount))
            if wait > worst[0]:
                worst = (wait, f"user {user!r} is over its limit of {capacity} {kind} per minute")
        if worst[0] > 0:
            return RateDecision(False, worst[0], worst[1])
        for bucket, amount in charges:
            bucket.take(amount)
        return RateDecision(True)

    def prune(self, now: float) -> None:
        """Forget buckets that have refilled completely (they behave like new ones)."""
        for key, bucket in list(self._buckets.items()):
            bucket.refill(now)
            if bucket.level >= bucket.capacity:
                del self._buckets[key]
