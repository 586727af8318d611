"""One rate limiter for the whole job, as a Ray actor every Hub call asks first.

The actor only does arithmetic (`reserve` returns how long to wait); callers sleep on
their side, so one slow caller never blocks the others' bookkeeping.
"""

from __future__ import annotations

import time

import ray

from lineage.hub.ratelimit import Rate, TokenBuckets


@ray.remote(num_cpus=0, max_restarts=-1)
class RateLimiterActor:
    def __init__(self, rates: dict[str, Rate]) -> None:
        self.buckets = TokenBuckets(rates)

    def reserve(self, kind: str) -> float:
        return self.buckets.reserve(kind)

    def pause(self, kind: str, seconds: float) -> None:
        self.buckets.pause(kind, seconds)

    def stats(self) -> dict:
        return self.buckets.stats()


class RayLimiter:
    """The `lineage.hub.Limiter` protocol over the actor; picklable, so workers share it."""

    def __init__(self, actor: ray.actor.ActorHandle) -> None:
        self.actor = actor

    def acquire(self, kind: str) -> None:
        wait = ray.get(self.actor.reserve.remote(kind))
        if wait > 0:
            time.sleep(wait)

    def pause(self, kind: str, seconds: float) -> None:
        ray.get(self.actor.pause.remote(kind, seconds))

    def stats(self) -> dict:
        return ray.get(self.actor.stats.remote())


def start_limiter(rates: dict[str, Rate]) -> RayLimiter:
    return RayLimiter(RateLimiterActor.remote(rates))
