"""Bounded retries with jitter around Hub calls, honouring the Hub's rate-limit headers.

Retried: 429 (after the window the headers announce: `RateLimit: "api";r=0;t=N` or
`Retry-After: N`), 408 and 5xx, and broken connections (timeouts, resets, short bodies).
Anything else (404, 401, a hostile file...) fails at once. The limiter is told about
every 429, so all workers of a cluster hold back, not just the one that was refused.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

import httpx2
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import parse_ratelimit_headers

from lineage.errors import HubError
from lineage.hub.ratelimit import Limiter

T = TypeVar("T")
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # tries in all, the first included
    base_s: float = 0.5  # first backoff; doubles per try
    cap_s: float = 30.0  # longest backoff (a 429 window may be longer: it is honoured)
    max_rate_wait_s: float = 600.0  # a 429 asking for longer than this is a failure


@dataclass(frozen=True)
class Verdict:
    retry: bool
    status: int | None  # HTTP status, None for a broken connection
    wait_s: float | None  # what the server asked for, if it said


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def server_wait(headers: Mapping[str, str]) -> float | None:
    """Seconds the Hub asked us to wait: RateLimit's `t` when spent, else Retry-After."""
    info = parse_ratelimit_headers(headers)
    if info is not None and info.remaining == 0:
        return float(info.reset_in_seconds)
    for key, value in headers.items():
        if key.lower() == "retry-after" and value.strip().isdigit():
            return float(value.strip())
    return None


def classify(err: BaseException) -> Verdict:
    """Is `err` (or what caused it) worth another try, and did the server name a wait?"""
    for cause in _chain(err):
        if isinstance(cause, HfHubHTTPError) and getattr(cause, "response", None) is not None:
            status = cause.response.status_code
            wait = server_wait(cause.response.headers) if status == 429 else None
            return Verdict(status in RETRY_STATUS, status, wait)
        if isinstance(cause, httpx2.TransportError):
            return Verdict(True, None, None)
        if isinstance(cause, OSError) and "Consistency check failed" in str(cause):
            return Verdict(True, None, None)  # a short download, seen after the fact
    return Verdict(False, None, None)


def backoff(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Full jitter: uniform in [base/2, min(cap, base * 2^attempt)], so workers spread."""
    ceiling = min(policy.cap_s, policy.base_s * (2**attempt))
    return rng.uniform(min(policy.base_s / 2, ceiling), ceiling)


def call_with_retries(
    fn: Callable[[], T],
    *,
    what: str,
    kind: str,
    limiter: Limiter,
    policy: RetryPolicy,
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[Verdict], None] | None = None,
) -> T:
    """Run `fn` after taking a `kind` token from `limiter`, retrying what is transient.

    Raises HubError (naming `what`, the status and the tries) when it gives up.
    """
    rng = rng or random.Random()
    last: BaseException | None = None
    for attempt in range(policy.attempts):
        limiter.acquire(kind)
        try:
            return fn()
        except Exception as err:  # classified below; non-transient ones re-raise
            verdict = classify(err)
            if not verdict.retry:
                raise
            last = err
            if on_retry:
                on_retry(verdict)
            if verdict.status == 429:
                wait = (
                    verdict.wait_s if verdict.wait_s is not None else backoff(attempt, policy, rng)
                )
                if wait > policy.max_rate_wait_s:
                    break
                limiter.pause(kind, wait)  # everyone waits the window out, not just us
                sleep(rng.uniform(0, min(policy.base_s, 1.0)))  # de-synchronise the wake-up
            elif attempt + 1 < policy.attempts:
                sleep(backoff(attempt, policy, rng))
    status = classify(last).status if last else None
    raise HubError(
        what,
        f"still failing after {policy.attempts} tries "
        f"({'HTTP ' + str(status) if status else 'connection error'}: {_first_line(last)})",
        "The Hub may be down or rate-limiting this token; the next run retries it",
    )


def _first_line(err: BaseException | None) -> str:
    return str(err).strip().splitlines()[0][:300] if err and str(err).strip() else repr(err)
