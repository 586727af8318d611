"""The fault plan: which requests the loopback Hub answers badly, and how.

Crawler tests need the failures the real Hub produces (rate limits, 5xx, connections
dropped mid-file, slow answers) on demand and reproducibly. A `FaultPlan` is a list of
rules; each request is matched against them in order and the first rule that fires
decides its fate. Rules can be added or cleared while the server runs (tests change
the weather between two crawler passes), so every access goes through one lock.
Probabilistic rules draw from one seeded RNG: the same seed and the same request
order give the same failures.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal["status", "drop", "slow"]


@dataclass
class Fault:
    """One rule. `times=None` means unlimited; `fired` counts how often it applied."""

    kind: FaultKind
    pattern: re.Pattern[str]
    methods: frozenset[str] | None = None
    times: int | None = 1
    probability: float = 1.0
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    after_bytes: int = 0
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.methods is not None and method.upper() not in self.methods:
            return False
        return self.pattern.search(path) is not None


def rate_limit_headers(retry_after: int = 0, limit: int = 500, window_s: int = 300) -> dict:
    """The headers the Hub sends with a 429 (IETF RateLimit draft + Retry-After).

    huggingface_hub sleeps `t + 1` seconds when `r=0`, so keep `retry_after` at 0 in tests.
    """
    return {
        "Retry-After": str(retry_after),
        "RateLimit": f'"api";r=0;t={retry_after}',
        "RateLimit-Policy": f'"fixed window";"api";q={limit};w={window_s}',
    }


class FaultPlan:
    """Ordered, thread-safe fault rules, matched on method and URL path (a regex search).

    Example: ``FaultPlan(seed=1).rate_limit(r"/resolve/", times=2)`` answers the next
    two file downloads with 429; ``.drop(r"model\\.safetensors$", after_bytes=100,
    methods=["GET"])`` sends 100 bytes of the next GET of that file, then hangs up.
    """

    def __init__(self, seed: int = 0) -> None:
        self._rules: list[Fault] = []
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    # -- building rules ------------------------------------------------------------
    def add(
        self,
        kind: FaultKind,
        pattern: str = "",
        *,
        times: int | None = 1,
        probability: float = 1.0,
        methods: list[str] | None = None,
        status: int = 500,
        headers: dict[str, str] | None = None,
        delay_s: float = 0.0,
        after_bytes: int = 0,
    ) -> Fault:
        """Append a rule and return it (its `fired` counter is live)."""
        if kind not in ("status", "drop", "slow"):
            raise ValueError(f"fault kind {kind!r} is not one of: status, drop, slow")
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability {probability} is outside [0, 1]")
        rule = Fault(
            kind=kind,
            pattern=re.compile(pattern),
            methods=frozenset(m.upper() for m in methods) if methods else None,
            times=times,
            probability=probability,
            status=status,
            headers=dict(headers or {}),
            delay_s=delay_s,
            after_bytes=after_bytes,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def rate_limit(
        self,
        pattern: str = "",
        *,
        times: int | None = 1,
        retry_after: int = 0,
        probability: float = 1.0,
        methods: list[str] | None = None,
    ) -> Fault:
        """Answer matching requests with 429 and the Hub's rate-limit headers."""
        return self.add(
            "status",
            pattern,
            times=times,
            probability=probability,
            methods=methods,
            status=429,
            headers=rate_limit_headers(retry_after),
        )

    def server_error(
        self,
        pattern: str = "",
        *,
        times: int | None = 1,
        status: int = 500,
        probability: float = 1.0,
        methods: list[str] | None = None,
    ) -> Fault:
        """Answer matching requests with a 5xx (or any status given)."""
        return self.add(
            "status", pattern, times=times, probability=probability, methods=methods, status=status
        )

    def drop(
        self,
        pattern: str = "",
        *,
        after_bytes: int = 0,
        times: int | None = 1,
        probability: float = 1.0,
        methods: list[str] | None = None,
    ) -> Fault:
        """Send headers and `after_bytes` of the body, then close the connection."""
        return self.add(
            "drop",
            pattern,
            times=times,
            probability=probability,
            methods=methods,
            after_bytes=after_bytes,
        )

    def slow(
        self,
        pattern: str = "",
        *,
        delay_s: float,
        times: int | None = 1,
        probability: float = 1.0,
        methods: list[str] | None = None,
    ) -> Fault:
        """Wait `delay_s` before answering normally."""
        return self.add(
            "slow", pattern, times=times, probability=probability, methods=methods, delay_s=delay_s
        )

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def rules(self) -> list[Fault]:
        with self._lock:
            return list(self._rules)

    # -- matching ------------------------------------------------------------------
    def draw(self, method: str, path: str) -> Fault | None:
        """The rule that fires for this request, if any; consumes one of its `times`.

        The RNG is drawn only for matching probabilistic rules, so adding an unrelated
        rule does not change which requests a seeded plan fails.
        """
        with self._lock:
            for rule in self._rules:
                if not rule.matches(method, path):
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                if rule.times is not None:
                    rule.times -= 1
                rule.fired += 1
                return rule
        return None
