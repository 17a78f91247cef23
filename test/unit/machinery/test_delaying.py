"""The delaying queue: add_after on a fake clock, earliest-wins dedupe, immediate adds, stop."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aimctrl.machinery.clock import FakeClock
from aimctrl.machinery.delaying import DelayingQueue
from aimctrl.machinery.metricsprovider import ControllerMetrics, InFlight, QueueMetrics

pytestmark = pytest.mark.timeout(20)


class Count:
    def __init__(self) -> None:
        self.n = 0

    def inc(self) -> None:
        self.n += 1

    def dec(self) -> None:
        self.n -= 1

    def observe(self, value: float, /) -> None:
        pass


class RetryMetrics:
    def __init__(self) -> None:
        self.retries = Count()

    def queue_metrics(self, name: str, *, in_flight: object) -> QueueMetrics:
        c = Count()
        return QueueMetrics(
            depth=c, adds=c, queue_duration=c, work_duration=c, retries=self.retries
        )

    def controller_metrics(self, name: str, *, max_concurrent_reconciles: int) -> ControllerMetrics:
        raise AssertionError("unused")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def q(clock: FakeClock) -> Iterator[DelayingQueue[str]]:
    queue: DelayingQueue[str] = DelayingQueue(clock=clock)
    yield queue
    queue.shut_down()


def step(clock: FakeClock, q: DelayingQueue[str], seconds: float) -> None:
    """Move time once the waiter has seen everything, then let it act on the new time."""
    assert q.wait_parked()
    clock.step(seconds)
    assert q.wait_parked()


def drain(q: DelayingQueue[str]) -> list[str]:
    keys = []
    while len(q):
        key, _ = q.get()
        assert key is not None
        q.done(key)
        keys.append(key)
    return keys


def test_add_after_adds_the_key_once_its_time_has_passed(
    clock: FakeClock, q: DelayingQueue[str]
) -> None:
    q.add_after("a", 5.0)
    step(clock, q, 4.9)
    assert (len(q), q.num_waiting()) == (0, 1)
    step(clock, q, 0.1)
    assert (len(q), q.num_waiting()) == (1, 0)
    assert drain(q) == ["a"]


def test_add_after_with_no_delay_adds_at_once(q: DelayingQueue[str]) -> None:
    q.add_after("a", 0.0)
    q.add_after("b", -1.0)
    assert drain(q) == ["a", "b"]
    assert q.num_waiting() == 0


def test_delayed_keys_become_ready_in_time_order(clock: FakeClock, q: DelayingQueue[str]) -> None:
    q.add_after("c", 3.0)
    q.add_after("a", 1.0)
    q.add_after("b", 2.0)
    step(clock, q, 1.5)
    assert drain(q) == ["a"]
    step(clock, q, 5.0)
    assert drain(q) == ["b", "c"]


def test_later_add_after_keeps_the_earlier_time(clock: FakeClock, q: DelayingQueue[str]) -> None:
    q.add_after("a", 5.0)
    q.add_after("a", 30.0)
    assert q.num_waiting() == 1
    step(clock, q, 5.0)
    assert drain(q) == ["a"]
    step(clock, q, 30.0)
    assert drain(q) == []


def test_earlier_add_after_moves_the_time_forward(clock: FakeClock, q: DelayingQueue[str]) -> None:
    q.add_after("a", 30.0)
    q.add_after("a", 5.0)
    assert q.num_waiting() == 1
    step(clock, q, 5.0)
    assert drain(q) == ["a"]
    step(clock, q, 30.0)
    assert drain(q) == []  # the 30 s entry was replaced, not kept


def test_immediate_add_supersedes_a_waiting_delayed_add(
    clock: FakeClock, q: DelayingQueue[str]
) -> None:
    q.add_after("a", 30.0)
    q.add("a")
    assert q.num_waiting() == 0
    assert drain(q) == ["a"]
    step(clock, q, 30.0)
    assert drain(q) == []  # handed out once, not twice


def test_delayed_add_of_a_key_in_processing_waits_for_done(
    clock: FakeClock, q: DelayingQueue[str]
) -> None:
    q.add("a")
    q.get()
    q.add_after("a", 1.0)
    step(clock, q, 1.0)
    assert len(q) == 0
    q.done("a")
    assert drain(q) == ["a"]


def test_every_add_after_counts_a_retry_until_shut_down(clock: FakeClock) -> None:
    metrics = RetryMetrics()
    q: DelayingQueue[str] = DelayingQueue(name="c", clock=clock, metrics=metrics)
    q.add_after("a", 0.0)
    q.add_after("a", 5.0)
    q.add_after("a", 5.0)
    assert metrics.retries.n == 3
    q.add_after("b", 5.0, retry=False)  # a debounced notification is not a retry
    assert metrics.retries.n == 3
    assert q.num_waiting() == 2
    q.shut_down()
    q.add_after("a", 1.0)
    assert metrics.retries.n == 3


def test_shut_down_discards_waiting_keys_and_stops_the_waiter(
    clock: FakeClock, q: DelayingQueue[str]
) -> None:
    q.add_after("a", 5.0)
    q.shut_down()
    q._waiter.join(5)
    assert not q._waiter.is_alive()
    assert q.num_waiting() == 0
    q.add_after("b", 1.0)
    assert q.num_waiting() == 0
    assert q.get() == (None, True)


def test_shut_down_with_drain_also_stops_the_waiter(clock: FakeClock) -> None:
    q: DelayingQueue[str] = DelayingQueue(clock=clock)
    q.add_after("a", 5.0)
    assert q.shut_down_with_drain(1.0)
    q._waiter.join(5)
    assert not q._waiter.is_alive()
    assert q.num_waiting() == 0


def test_waiter_wakes_on_its_heartbeat_without_losing_keys(
    clock: FakeClock, q: DelayingQueue[str]
) -> None:
    q.add_after("a", 25.0)
    for _ in range(2):  # two heartbeats (10 s each) pass before the key is due
        assert q.wait_parked()
        assert q._parked_until == clock.now() + 10.0
        step(clock, q, 10.0)
        assert (len(q), q.num_waiting()) == (0, 1)
    assert q._parked_until == clock.now() + 5.0
    step(clock, q, 5.0)
    assert drain(q) == ["a"]


def test_in_flight_is_reported_by_a_named_delaying_queue(clock: FakeClock) -> None:
    seen: list[object] = []

    class Capture(RetryMetrics):
        def queue_metrics(self, name: str, *, in_flight: object) -> QueueMetrics:
            seen.append(in_flight)
            return super().queue_metrics(name, in_flight=in_flight)

    q: DelayingQueue[str] = DelayingQueue(name="c", clock=clock, metrics=Capture())
    try:
        q.add("a")
        q.get()
        clock.step(2.0)
        (in_flight,) = seen
        assert callable(in_flight)
        assert in_flight() == InFlight(2.0, 2.0)
    finally:
        q.shut_down()
