"""Rate limiters: client-go's numbers for exponential backoff, the token bucket and their max."""

from __future__ import annotations

import pytest

from aimctrl.machinery.clock import FakeClock
from aimctrl.machinery.ratelimit import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    default_controller_rate_limiter,
)


def test_exponential_delay_doubles_from_5ms_per_failure() -> None:
    limiter = ItemExponentialFailureRateLimiter()
    delays = [limiter.when("a") for _ in range(19)]
    assert delays[0] == pytest.approx(0.005)
    assert delays[1] == pytest.approx(0.010)
    assert delays[4] == pytest.approx(0.080)
    assert delays[8] == pytest.approx(1.28)
    assert delays[17] == pytest.approx(655.36)
    assert delays[18] == 1000.0  # capped from the 19th failure on
    assert limiter.num_requeues("a") == 19


def test_exponential_delay_stays_at_the_cap_without_overflowing() -> None:
    limiter = ItemExponentialFailureRateLimiter(0.005, 1000.0)
    for _ in range(2000):
        last = limiter.when("a")
    assert last == 1000.0


def test_exponential_counts_each_key_separately_and_forget_resets() -> None:
    limiter = ItemExponentialFailureRateLimiter()
    for _ in range(3):
        limiter.when("a")
    assert limiter.when("b") == pytest.approx(0.005)
    assert limiter.num_requeues("a") == 3
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert limiter.when("a") == pytest.approx(0.005)
    assert limiter.num_requeues("b") == 1


def test_bucket_allows_the_burst_then_spaces_calls_at_qps() -> None:
    clock = FakeClock()
    limiter = BucketRateLimiter(10.0, 100, clock=clock)
    assert {limiter.when(i) for i in range(100)} == {0.0}
    assert limiter.when(100) == pytest.approx(0.1)  # the 101st call
    extra = [limiter.when(i) for i in range(101, 110)]
    assert extra[-1] == pytest.approx(1.0)  # the 110th call
    assert limiter.num_requeues(0) == 0


def test_bucket_refills_at_qps_up_to_the_burst() -> None:
    clock = FakeClock()
    limiter = BucketRateLimiter(10.0, 100, clock=clock)
    for i in range(110):
        limiter.when(i)  # 10 tokens in debt
    clock.step(1.0)  # repays exactly the debt
    assert limiter.when("x") == pytest.approx(0.1)
    clock.step(3600.0)
    assert {limiter.when(i) for i in range(100)} == {0.0}
    assert limiter.when("y") == pytest.approx(0.1)


def test_bucket_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="qps"):
        BucketRateLimiter(0.0, 10)


def test_max_of_takes_the_longest_delay_and_fans_out() -> None:
    clock = FakeClock()
    slow = ItemExponentialFailureRateLimiter(1.0, 100.0)
    fast = ItemExponentialFailureRateLimiter(0.001, 100.0)
    bucket = BucketRateLimiter(1.0, 1, clock=clock)
    limiter = MaxOfRateLimiter(fast, slow, bucket)
    assert limiter.when("a") == 1.0
    assert limiter.when("a") == 2.0
    assert (fast.num_requeues("a"), slow.num_requeues("a")) == (2, 2)
    assert limiter.num_requeues("a") == 2
    limiter.forget("a")
    assert (fast.num_requeues("a"), slow.num_requeues("a")) == (0, 0)


def test_default_controller_limiter_is_max_of_backoff_and_bucket() -> None:
    limiter = default_controller_rate_limiter(clock=FakeClock())
    assert [limiter.when(i) for i in range(100)] == pytest.approx([0.005] * 100)
    assert limiter.when(100) == pytest.approx(0.1)  # bucket exhausted: its delay wins
    assert limiter.num_requeues(0) == 1
    limiter.forget(0)
    assert limiter.num_requeues(0) == 0
