"""The job's rate limiter: with no rate to keep, no actor (a process) is started with the
job; the first 429, seen in any process, creates it under the job's name, and every
other copy of the limiter finds it and honours the pause within a poll interval. With a
rate, the actor starts at once and every request of that kind reserves through it."""

from __future__ import annotations

import time

import pytest
import ray

from jobs.crawl.limiter import PAUSE_POLL_S, start_limiter
from lineage.hub import default_rates

pytestmark = pytest.mark.usefixtures("ray_local")


@ray.remote(num_cpus=0)
class Pauser:
    """Another process of the job that meets a 429 and keeps its copy of the limiter, as
    a fingerprinting actor's client does (the actor lives while a handle to it does)."""

    def __init__(self, limiter) -> None:
        self.limiter = limiter

    def pause(self, kind: str, seconds: float) -> None:
        self.limiter.pause(kind, seconds)


def test_no_actor_until_a_pause_then_every_copy_honours_it(tmp_path):
    limiter = start_limiter(default_rates(0, 0))
    assert limiter.actor is None
    limiter.acquire("api")
    limiter.acquire("resolve")  # no rate, no pause: nothing started, nothing waited
    time.sleep(2 * PAUSE_POLL_S)
    limiter.acquire("resolve")  # looks the name up again: still nobody
    with pytest.raises(ValueError):
        ray.get_actor(limiter.name)
    assert limiter.stats() == {"granted": {"api": 0, "resolve": 0},
                               "pauses": {"api": 0, "resolve": 0}}
    pauser = Pauser.remote(limiter)
    try:
        ray.get(pauser.pause.remote("resolve", 1.0))  # creates the actor there
        paused_at = time.monotonic()
        assert ray.get_actor(limiter.name) is not None
        while time.monotonic() - paused_at < 0.5:  # learns it within a poll or two
            limiter.acquire("resolve")
        assert time.monotonic() - paused_at >= 0.9  # and slept the pause out
        started = time.monotonic()
        limiter.acquire("api")  # another kind is not paused
        assert time.monotonic() - started < 0.5
        assert limiter.stats()["pauses"] == {"api": 0, "resolve": 1}
    finally:
        ray.kill(ray.get_actor(limiter.name))
        ray.kill(pauser)


def test_a_rate_starts_the_actor_with_the_job():
    limiter = start_limiter(default_rates(600, 0))
    try:
        assert limiter.actor is not None and limiter.name is None
        limiter.acquire("api")
        limiter.acquire("api")
        assert limiter.stats()["granted"]["api"] == 2
    finally:
        ray.kill(limiter.actor)
