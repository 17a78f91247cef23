"""Rate limiters for retries (client-go's ``default_rate_limiters.go``).

A limiter answers "how long should this key wait before its next try?". :meth:`RateLimiter.when`
has a side effect: it counts one failure for the key (or spends one token); :meth:`forget` clears a
key's memory and must be called once the key succeeds, or the per-key map grows forever.

Numbers (the controller default, :func:`default_controller_rate_limiter`, is the max of both):

* :class:`ItemExponentialFailureRateLimiter`: ``base · 2^n`` for the key's n-th failure, capped:
  5 ms, 10 ms, … 80 ms at n=4, 1.28 s at n=8, 1000 s from n=18 on;
* :class:`BucketRateLimiter`: a token bucket shared by all keys, ``qps`` tokens per second up to
  ``burst``; every ``when()`` reserves one token, waiting for it if the bucket is empty, so with
  10 qps / burst 100 the 101st call in one instant waits 0.1 s and the 110th waits 1 s.

All limiters are safe to call from several threads.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Protocol

from aimctrl.machinery.clock import REAL_CLOCK, Clock

__all__ = [
    "BucketRateLimiter",
    "ItemExponentialFailureRateLimiter",
    "MaxOfRateLimiter",
    "RateLimiter",
    "default_controller_rate_limiter",
]


class RateLimiter(Protocol):
    def when(self, key: Hashable) -> float:
        """Seconds ``key`` should wait before its next try; records one more try."""
        ...

    def forget(self, key: Hashable) -> None:
        """Stop tracking ``key``: its next failure starts from the beginning."""
        ...

    def num_requeues(self, key: Hashable) -> int:
        """Failures recorded for ``key`` since it was last forgotten."""
        ...


class ItemExponentialFailureRateLimiter:
    """Per-key exponential backoff: ``base · 2^failures`` seconds, never more than ``cap``."""

    def __init__(self, base: float = 0.005, cap: float = 1000.0) -> None:
        self._base = base
        self._cap = cap
        self._lock = threading.Lock()
        self._failures: dict[Hashable, int] = {}

    def when(self, key: Hashable) -> float:
        with self._lock:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
        if n >= 1024:  # 2**n would overflow a float long before; the cap applies anyway
            return self._cap
        return min(self._base * 2.0**n, self._cap)

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def num_requeues(self, key: Hashable) -> int:
        with self._lock:
            return self._failures.get(key, 0)


class BucketRateLimiter:
    """A global token bucket: one reservation per :meth:`when`, whatever the key.

    The bucket starts full. A reservation taken from an empty bucket is still granted, for a
    future time: the bucket goes into debt and the returned delay is how long until it is repaid.
    """

    def __init__(self, qps: float = 10.0, burst: int = 100, *, clock: Clock = REAL_CLOCK) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError(f"need qps > 0 and burst >= 1, got qps={qps} burst={burst}")
        self._qps = qps
        self._burst = float(burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._last = clock.now()

    def when(self, key: Hashable) -> float:
        with self._lock:
            now = self._clock.now()
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._qps)
            self._last = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self._qps

    def forget(self, key: Hashable) -> None:
        pass

    def num_requeues(self, key: Hashable) -> int:
        return 0


class MaxOfRateLimiter:
    """The longest delay any member asks for; every member sees every call."""

    def __init__(self, *limiters: RateLimiter) -> None:
        if not limiters:
            raise ValueError("MaxOfRateLimiter needs at least one limiter")
        self._limiters = limiters

    def when(self, key: Hashable) -> float:
        return max([limiter.when(key) for limiter in self._limiters])  # all, for side effects

    def forget(self, key: Hashable) -> None:
        for limiter in self._limiters:
            limiter.forget(key)

    def num_requeues(self, key: Hashable) -> int:
        return max(limiter.num_requeues(key) for limiter in self._limiters)


def default_controller_rate_limiter(*, clock: Clock = REAL_CLOCK) -> RateLimiter:
    """max(per-key 5 ms · 2^n capped at 1000 s, global 10 qps with burst 100)."""
    return MaxOfRateLimiter(
        ItemExponentialFailureRateLimiter(0.005, 1000.0),
        BucketRateLimiter(10.0, 100, clock=clock),
    )
