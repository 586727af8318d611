"""One rate limiter for the whole job, as a Ray actor every Hub call asks first.

The actor only does arithmetic (`reserve` returns how long to wait); callers sleep on
their side, so one slow caller never blocks the others' bookkeeping. A kind without a
rate (0: unlimited) reserves nothing: its callers only honour pauses (a 429 seen by any
of them), which they learn from the actor in the background, at most PAUSE_POLL_S
late, instead of a round trip per request (and a first request waiting for the actor
to start).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import ray

from lineage.hub.ratelimit import Rate, TokenBuckets

PAUSE_POLL_S = 0.1


@ray.remote(num_cpus=0, max_restarts=-1)
class RateLimiterActor:
    def __init__(self, rates: dict[str, Rate]) -> None:
        self.buckets = TokenBuckets(rates)

    def reserve(self, kind: str) -> float:
        return self.buckets.reserve(kind)

    def paused_for(self, kind: str) -> float:
        return self.buckets.paused_for(kind)

    def pause(self, kind: str, seconds: float) -> None:
        self.buckets.pause(kind, seconds)

    def stats(self) -> dict:
        return self.buckets.stats()


class RayLimiter:
    """The `lineage.hub.Limiter` protocol over the actor; picklable, so workers share it."""

    def __init__(self, actor: ray.actor.ActorHandle, unlimited: frozenset[str] = frozenset()):
        self.actor = actor
        self.unlimited = frozenset(unlimited)
        self._local()

    def _local(self) -> None:
        """What each process keeps for itself (not pickled)."""
        self._lock = threading.Lock()
        self._paused_until: dict[str, float] = {}
        self._asked: dict[str, tuple[Future | None, float]] = {}

    def __getstate__(self) -> dict:
        return {"actor": self.actor, "unlimited": self.unlimited}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local()

    def acquire(self, kind: str) -> None:
        if kind in self.unlimited:
            wait = self._pause_left(kind)
        else:
            wait = ray.get(self.actor.reserve.remote(kind))
        if wait > 0:
            time.sleep(wait)

    def _pause_left(self, kind: str) -> float:
        """The pause known here; the actor is asked again, without waiting, once the
        last answer is in and PAUSE_POLL_S have passed since it was asked."""
        now = time.monotonic()
        with self._lock:
            future, asked_at = self._asked.get(kind, (None, float("-inf")))
            if future is not None and future.done():
                try:
                    left = future.result()
                except ray.exceptions.RayError:  # the actor restarts; ask it again later
                    left = 0.0
                until = max(self._paused_until.get(kind, 0.0), asked_at + left)
                self._paused_until[kind] = until
                future = None
            if future is None and now - asked_at >= PAUSE_POLL_S:
                future, asked_at = self.actor.paused_for.remote(kind).future(), now
            self._asked[kind] = (future, asked_at)
            return max(0.0, self._paused_until.get(kind, 0.0) - now)

    def pause(self, kind: str, seconds: float) -> None:
        with self._lock:
            until = max(self._paused_until.get(kind, 0.0), time.monotonic() + seconds)
            self._paused_until[kind] = until
        ray.get(self.actor.pause.remote(kind, seconds))

    def stats(self) -> dict:
        return ray.get(self.actor.stats.remote())


def start_limiter(rates: dict[str, Rate]) -> RayLimiter:
    unlimited = frozenset(kind for kind, rate in rates.items() if rate.per_second <= 0)
    return RayLimiter(RateLimiterActor.remote(rates), unlimited)
