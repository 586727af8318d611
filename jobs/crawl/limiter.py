"""One rate limiter for the whole job, as a Ray actor every Hub call asks first.

The actor only does arithmetic (`reserve` returns how long to wait); callers sleep on
their side, so one slow caller never blocks the others' bookkeeping. A kind without a
rate (0: unlimited) reserves nothing: its callers only honour pauses (a 429 seen by any
of them), which they learn from the actor in the background, at most PAUSE_POLL_S
late, instead of a round trip per request (and a first request waiting for the actor
to start).

When no kind has a rate, the actor is not started with the job (a process: about half
a second of CPU, on the cores the crawl needs): it is a named actor, created by the
first copy that sees a 429 (`pause`); every other copy looks the name up every
PAUSE_POLL_S until it exists (a lookup costs about 0.3 ms), then polls it as above. The
actor lives as long as the process that created it.
"""

from __future__ import annotations

import threading
import time
import uuid
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
    """The `lineage.hub.Limiter` protocol over the actor; picklable, so workers share it.

    `actor` None: not started yet (no kind has a rate); `name` finds or creates it."""

    def __init__(
        self,
        actor: ray.actor.ActorHandle | None,
        unlimited: frozenset[str] = frozenset(),
        *,
        name: str | None = None,
        rates: dict[str, Rate] | None = None,
    ):
        self.actor = actor
        self.unlimited = frozenset(unlimited)
        self.name, self.rates = name, rates
        self._local()

    def _local(self) -> None:
        """What each process keeps for itself (not pickled)."""
        self._lock = threading.Lock()
        self._paused_until: dict[str, float] = {}
        self._asked: dict[str, tuple[Future | None, float]] = {}
        self._looked_up = float("-inf")  # when the lazy actor's name was last looked up

    def __getstate__(self) -> dict:
        return {"actor": self.actor, "unlimited": self.unlimited, "name": self.name,
                "rates": self.rates}

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
        actor = self.actor or self._look_up(now)
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
            if actor is not None and future is None and now - asked_at >= PAUSE_POLL_S:
                future, asked_at = actor.paused_for.remote(kind).future(), now
            self._asked[kind] = (future, asked_at)
            return max(0.0, self._paused_until.get(kind, 0.0) - now)

    def _look_up(self, now: float | None = None) -> ray.actor.ActorHandle | None:
        """The lazy actor, if some copy has created it (looked up at most every
        PAUSE_POLL_S; `now` None: at once)."""
        if self.name is None:
            return None
        if now is not None:
            if now - self._looked_up < PAUSE_POLL_S:
                return None
            self._looked_up = now
        try:
            self.actor = ray.get_actor(self.name)
        except ValueError:  # nobody has seen a 429 yet
            return None
        return self.actor

    def pause(self, kind: str, seconds: float) -> None:
        with self._lock:
            until = max(self._paused_until.get(kind, 0.0), time.monotonic() + seconds)
            self._paused_until[kind] = until
        ray.get(self._actor().pause.remote(kind, seconds))

    def _actor(self) -> ray.actor.ActorHandle:
        """The actor, created now (under its name, or found if another copy did) when
        this is the job's first pause."""
        if self.actor is None:
            self.actor = RateLimiterActor.options(name=self.name, get_if_exists=True).remote(
                self.rates
            )
        return self.actor

    def stats(self) -> dict:
        if self.actor is None and self._look_up() is None:
            return TokenBuckets(self.rates or {}).stats()  # no pause, nothing reserved
        return ray.get(self.actor.stats.remote())


def start_limiter(rates: dict[str, Rate]) -> RayLimiter:
    """The job's limiter: its actor started now if some kind has a rate, else on the
    first pause (see the module's docstring)."""
    unlimited = frozenset(kind for kind, rate in rates.items() if rate.per_second <= 0)
    if unlimited == frozenset(rates):
        name = f"lineage-limiter-{uuid.uuid4().hex}"
        return RayLimiter(None, unlimited, name=name, rates=rates)
    return RayLimiter(RateLimiterActor.remote(rates), unlimited)
