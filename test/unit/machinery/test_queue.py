"""The base workqueue: FIFO, dedupe, one owner per key, shut-down and drain, metric hooks."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from aimctrl.machinery.clock import FakeClock
from aimctrl.machinery.metricsprovider import (
    ControllerMetrics,
    InFlight,
    NoopMetricsProvider,
    QueueMetrics,
)
from aimctrl.machinery.queue import Queue

pytestmark = pytest.mark.timeout(20)


class Tally:
    """A counter/gauge/histogram that remembers what it was told."""

    def __init__(self) -> None:
        self.value = 0.0
        self.observed: list[float] = []

    def inc(self) -> None:
        self.value += 1

    def dec(self) -> None:
        self.value -= 1

    def observe(self, value: float, /) -> None:
        self.observed.append(value)


class RecordingMetrics(NoopMetricsProvider):
    def __init__(self) -> None:
        self.depth, self.adds, self.retries = Tally(), Tally(), Tally()
        self.queue_duration, self.work_duration = Tally(), Tally()
        self.names: list[str] = []
        self.in_flight: Callable[[], InFlight] = lambda: InFlight(0.0, 0.0)

    def queue_metrics(self, name: str, *, in_flight: Callable[[], InFlight]) -> QueueMetrics:
        self.names.append(name)
        self.in_flight = in_flight
        return QueueMetrics(
            depth=self.depth,
            adds=self.adds,
            queue_duration=self.queue_duration,
            work_duration=self.work_duration,
            retries=self.retries,
        )

    def controller_metrics(self, name: str, *, max_concurrent_reconciles: int) -> ControllerMetrics:
        raise AssertionError("a queue asks for queue metrics only")


def test_get_hands_out_keys_in_the_order_they_were_added() -> None:
    q: Queue[str] = Queue()
    for key in ("c", "a", "b"):
        q.add(key)
    assert [q.get() for _ in range(3)] == [("c", False), ("a", False), ("b", False)]


def test_duplicate_adds_collapse_into_one_queued_key() -> None:
    q: Queue[str] = Queue()
    q.add("a")
    q.add("b")
    q.add("a")
    assert len(q) == q.len() == 2
    assert q.get() == ("a", False)
    assert q.get() == ("b", False)
    assert len(q) == 0


def test_key_in_processing_is_not_handed_to_a_second_worker() -> None:
    q: Queue[str] = Queue()
    q.add("a")
    key, _ = q.get()  # worker 1 holds "a"
    q.add("a")
    q.add("b")
    assert len(q) == 1  # "a" waits in dirty, not in the queue
    assert q.get() == ("b", False)  # worker 2 gets "b", never a second "a"
    assert len(q) == 0
    q.done("b")
    assert len(q) == 0
    q.done(key or "")
    assert q.get() == ("a", False)


def test_add_while_processing_requeues_exactly_once_after_done() -> None:
    q: Queue[str] = Queue()
    q.add("a")
    q.get()
    for _ in range(5):
        q.add("a")
    assert len(q) == 0
    q.done("a")
    assert len(q) == 1
    assert q.get() == ("a", False)
    q.done("a")
    assert len(q) == 0


def test_done_without_new_adds_does_not_requeue() -> None:
    q: Queue[str] = Queue()
    q.add("a")
    q.get()
    q.done("a")
    assert len(q) == 0


def test_many_threads_never_hold_the_same_key_at_once() -> None:
    q: Queue[int] = Queue()
    keys, rounds, workers = 5, 200, 4
    lock = threading.Lock()
    held: set[int] = set()
    handouts = dict.fromkeys(range(keys), 0)
    violations: list[int] = []
    finished = threading.Event()

    def work() -> None:
        while True:
            key, shutdown = q.get()
            if shutdown or key is None:
                return
            with lock:
                if key in held:
                    violations.append(key)
                held.add(key)
                handouts[key] += 1
                again = handouts[key] < rounds
            if again:
                q.add(key)  # re-added while processing: must wait for done()
                q.add((key + 1) % keys)
            with lock:
                held.discard(key)
                if all(n >= rounds for n in handouts.values()):
                    finished.set()
            q.done(key)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for key in range(keys):
        q.add(key)
    assert finished.wait(15)
    q.shut_down()
    for t in threads:
        t.join(5)
    assert violations == []
    assert all(n >= rounds for n in handouts.values())
    assert not any(t.is_alive() for t in threads)


def test_shut_down_drops_new_adds_and_get_reports_shutdown() -> None:
    q: Queue[str] = Queue()
    q.shut_down()
    q.add("a")
    assert q.shutting_down()
    assert len(q) == 0
    assert q.get() == (None, True)
    assert q.get() == (None, True)


def test_get_after_shut_down_still_returns_queued_keys_first() -> None:
    q: Queue[str] = Queue()
    q.add("a")
    q.shut_down()
    assert q.get() == ("a", False)
    assert q.get() == (None, True)


def test_shut_down_wakes_a_blocked_getter() -> None:
    q: Queue[str] = Queue()
    got: list[tuple[str | None, bool]] = []
    t = threading.Thread(target=lambda: got.append(q.get()))
    t.start()
    q.shut_down()
    t.join(5)
    assert got == [(None, True)]


def _drain_in_thread(q: Queue[str], timeout: float | None) -> tuple[threading.Thread, list[bool]]:
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(q.shut_down_with_drain(timeout)))
    t.start()
    return t, result


def test_shut_down_with_drain_waits_for_in_flight_keys() -> None:
    clock = FakeClock()
    q: Queue[str] = Queue(clock=clock)
    q.add("a")
    q.get()
    t, result = _drain_in_thread(q, 30.0)
    assert clock.block_until_waiters()  # the drain is waiting on the clock
    assert t.is_alive()
    assert q.get() == (None, True)  # already shutting down
    q.done("a")
    t.join(5)
    assert result == [True]


def test_shut_down_with_drain_gives_up_after_its_timeout() -> None:
    clock = FakeClock()
    q: Queue[str] = Queue(clock=clock)
    q.add("a")
    q.get()
    t, result = _drain_in_thread(q, 30.0)
    assert clock.block_until_waiters()
    clock.step(29.0)
    assert clock.block_until_waiters()
    assert t.is_alive()
    clock.step(1.0)
    t.join(5)
    assert result == [False]


def test_shut_down_ends_a_draining_wait() -> None:
    clock = FakeClock()
    q: Queue[str] = Queue(clock=clock)
    q.add("a")
    q.get()
    t, result = _drain_in_thread(q, None)
    q.shut_down()
    t.join(5)
    assert result == [False]


def test_shut_down_with_drain_returns_at_once_when_nothing_is_in_flight() -> None:
    q: Queue[str] = Queue(clock=FakeClock())
    q.add("queued")
    assert q.shut_down_with_drain(30.0) is True
    assert q.get() == ("queued", False)


def test_named_queue_reports_depth_adds_and_latencies() -> None:
    clock = FakeClock()
    metrics = RecordingMetrics()
    q: Queue[str] = Queue(name="models", clock=clock, metrics=metrics)
    assert metrics.names == ["models"]
    q.add("a")
    q.add("a")  # deduped: not an add
    clock.step(2.0)
    q.add("b")
    assert (metrics.adds.value, metrics.depth.value) == (2, 2)
    q.get()
    assert metrics.depth.value == 1
    assert metrics.queue_duration.observed == [2.0]
    clock.step(3.0)
    assert metrics.in_flight() == InFlight(3.0, 3.0)
    q.get()
    clock.step(1.0)
    assert metrics.in_flight() == InFlight(4.0 + 1.0, 4.0)
    q.add("a")  # dirty while processing still counts as an add and as depth
    assert (metrics.adds.value, metrics.depth.value) == (3, 1)
    q.done("a")
    assert metrics.work_duration.observed == [4.0]
    assert metrics.in_flight() == InFlight(1.0, 1.0)
    q.done("b")
    assert metrics.in_flight() == InFlight(0.0, 0.0)


def test_unnamed_queue_asks_for_no_metrics() -> None:
    metrics = RecordingMetrics()
    q: Queue[str] = Queue(metrics=metrics)
    q.add("a")
    assert metrics.names == []
    assert metrics.adds.value == 0
