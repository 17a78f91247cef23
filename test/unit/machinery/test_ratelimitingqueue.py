"""The rate-limiting queue: add_rate_limited waits the limiter's delay; forget resets it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aimctrl.machinery.clock import FakeClock
from aimctrl.machinery.ratelimit import ItemExponentialFailureRateLimiter
from aimctrl.machinery.ratelimitingqueue import RateLimitingQueue

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def q(clock: FakeClock) -> Iterator[RateLimitingQueue[str]]:
    queue: RateLimitingQueue[str] = RateLimitingQueue(
        rate_limiter=ItemExponentialFailureRateLimiter(1.0, 60.0), clock=clock
    )
    yield queue
    queue.shut_down()


def step(clock: FakeClock, q: RateLimitingQueue[str], seconds: float) -> None:
    assert q.wait_parked()
    clock.step(seconds)
    assert q.wait_parked()


def test_add_rate_limited_waits_longer_after_each_failure(
    clock: FakeClock, q: RateLimitingQueue[str]
) -> None:
    q.add_rate_limited("a")  # 1 s
    step(clock, q, 1.0)
    assert q.get() == ("a", False)
    q.done("a")
    q.add_rate_limited("a")  # 2 s
    step(clock, q, 1.0)
    assert len(q) == 0
    step(clock, q, 1.0)
    assert len(q) == 1
    assert q.num_requeues("a") == 2


def test_forget_resets_the_backoff_but_not_the_queue(
    clock: FakeClock, q: RateLimitingQueue[str]
) -> None:
    q.add_rate_limited("a")
    q.add_rate_limited("a")
    q.forget("a")
    assert q.num_requeues("a") == 0
    assert q.num_waiting() == 1  # forget does not remove the pending retry
    step(clock, q, 1.0)
    assert len(q) == 1


def test_default_limiter_retries_a_first_failure_after_5ms() -> None:
    clock = FakeClock()
    q: RateLimitingQueue[str] = RateLimitingQueue(clock=clock)
    try:
        q.add_rate_limited("a")
        step(clock, q, 0.004)
        assert len(q) == 0
        step(clock, q, 0.001)
        assert len(q) == 1
    finally:
        q.shut_down()
