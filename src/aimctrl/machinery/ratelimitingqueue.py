"""A delaying workqueue whose retries are paced by a rate limiter (client-go's rate-limiting queue).

Two paths in, never mixed: events call plain :meth:`~Queue.add` (no limiter involved); failures call
:meth:`RateLimitingQueue.add_rate_limited`, which is ``add_after(key, limiter.when(key))`` and so
counts one failure for the key. :meth:`RateLimitingQueue.forget` clears that count and must follow
every success; it does not touch the queue (:meth:`~Queue.done` is still required).
"""

from __future__ import annotations

from aimctrl.machinery.clock import REAL_CLOCK, Clock
from aimctrl.machinery.delaying import DEFAULT_HEARTBEAT, DelayingQueue
from aimctrl.machinery.metricsprovider import NOOP_METRICS, MetricsProvider
from aimctrl.machinery.queue import K
from aimctrl.machinery.ratelimit import RateLimiter, default_controller_rate_limiter

__all__ = ["RateLimitingQueue"]


class RateLimitingQueue(DelayingQueue[K]):
    """A :class:`DelayingQueue` plus a :class:`RateLimiter` (default: the controller default)."""

    def __init__(
        self,
        *,
        rate_limiter: RateLimiter | None = None,
        name: str = "",
        clock: Clock = REAL_CLOCK,
        metrics: MetricsProvider = NOOP_METRICS,
        heartbeat: float = DEFAULT_HEARTBEAT,
    ) -> None:
        super().__init__(name=name, clock=clock, metrics=metrics, heartbeat=heartbeat)
        self.rate_limiter = rate_limiter or default_controller_rate_limiter(clock=clock)

    def add_rate_limited(self, key: K) -> None:
        """Add ``key`` after the limiter's delay for it (counting one more failure)."""
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: K) -> None:
        """Reset the limiter's memory of ``key``."""
        self.rate_limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        return self.rate_limiter.num_requeues(key)
