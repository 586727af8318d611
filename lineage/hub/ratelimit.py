"""Token buckets, one per Hub resource kind ("api" calls, "resolve" file reads).

The bucket never sleeps itself: `reserve` returns how long the caller must wait, so the
same object can live in a Ray actor shared by every worker without blocking it. A 429
`pause`s a kind for everyone until the window the Hub announced has passed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

KINDS = ("api", "resolve")


class Limiter(Protocol):
    """What a Hub client needs from a rate limiter, local or shared across a cluster."""

    def acquire(self, kind: str) -> None: ...

    def pause(self, kind: str, seconds: float) -> None: ...


@dataclass
class Rate:
    per_second: float  # sustained rate; <= 0 means unlimited
    burst: float  # bucket size


class TokenBuckets:
    """Thread-safe buckets keyed by kind; `clock` is injectable for tests."""

    def __init__(self, rates: dict[str, Rate], clock: Callable[[], float] = time.monotonic):
        self.rates = rates
        self._clock = clock
        now = clock()
        self._tokens = {k: r.burst for k, r in rates.items()}
        self._stamp = {k: now for k in rates}
        self._paused_until = {k: 0.0 for k in rates}
        self._lock = threading.Lock()
        self.granted = {k: 0 for k in rates}
        self.pauses = {k: 0 for k in rates}

    def reserve(self, kind: str) -> float:
        """Take one token of `kind`; return the seconds to wait before using it."""
        with self._lock:
            rate = self.rates.get(kind)
            if rate is None:
                raise KeyError(f"rate-limit kind {kind!r} is not one of {sorted(self.rates)}")
            self.granted[kind] += 1
            now = self._clock()
            pause = max(0.0, self._paused_until[kind] - now)
            if rate.per_second <= 0:
                return pause
            elapsed = now - self._stamp[kind]
            self._tokens[kind] = min(rate.burst, self._tokens[kind] + elapsed * rate.per_second)
            self._stamp[kind] = now
            self._tokens[kind] -= 1.0  # may go negative: that debt is the queue
            debt = max(0.0, -self._tokens[kind] / rate.per_second)
            return max(pause, debt)

    def pause(self, kind: str, seconds: float) -> None:
        """Hold every caller of `kind` for `seconds` (the Hub said the window is spent)."""
        with self._lock:
            self.pauses[kind] = self.pauses.get(kind, 0) + 1
            until = self._clock() + max(0.0, seconds)
            self._paused_until[kind] = max(self._paused_until.get(kind, 0.0), until)

    def paused_for(self, kind: str) -> float:
        """Seconds `kind` stays paused (0 when it is not); takes no token."""
        with self._lock:
            return max(0.0, self._paused_until.get(kind, 0.0) - self._clock())

    def stats(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {"granted": dict(self.granted), "pauses": dict(self.pauses)}


class LocalLimiter:
    """A `Limiter` for one process (the driver in tests, or a notebook)."""

    def __init__(self, buckets: TokenBuckets) -> None:
        self.buckets = buckets

    def acquire(self, kind: str) -> None:
        wait = self.buckets.reserve(kind)
        if wait > 0:
            time.sleep(wait)

    def pause(self, kind: str, seconds: float) -> None:
        self.buckets.pause(kind, seconds)


def default_rates(api_per_5min: float = 1000, resolve_per_5min: float = 5000) -> dict[str, Rate]:
    """Rates from per-5-minute quotas (the Hub's window), with a 10 s burst."""
    rates = {}
    for kind, quota in (("api", api_per_5min), ("resolve", resolve_per_5min)):
        per_s = quota / 300.0 if quota > 0 else 0.0
        rates[kind] = Rate(per_s, max(1.0, per_s * 10))
    return rates
