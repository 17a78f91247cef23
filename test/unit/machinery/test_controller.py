"""The controller runner: outcome → queue action, one key per worker, cache sync, shutdown, logs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from aimctrl.machinery.clock import FakeClock
from aimctrl.machinery.controller import CacheSyncTimeoutError, Controller
from aimctrl.machinery.reconcile import Request, Result, TerminalError

pytestmark = pytest.mark.timeout(30)

A, B, C, D, E = (Request("ns", n) for n in "abcde")
WAIT = 5.0  # real seconds: only ever the bound on waiting for another thread


class Limiter:
    """A rate limiter that records calls and answers a fixed delay."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.when_calls: list[Hashable] = []
        self.forgotten: list[Hashable] = []

    def when(self, key: Hashable) -> float:
        self.when_calls.append(key)
        return self.delay

    def forget(self, key: Hashable) -> None:
        self.forgotten.append(key)

    def num_requeues(self, key: Hashable) -> int:
        return self.when_calls.count(key)


Behaviour = Callable[[Request, int], Result]


class Scripted:
    """A reconciler whose answer for a key depends on how often that key was seen."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour: Behaviour = behaviour or (lambda key, n: Result())
        self.calls: list[Request] = []
        self.contexts: list[dict[str, object]] = []
        self._cond = threading.Condition()

    def reconcile(self, request: Request) -> Result:
        with self._cond:
            n = self.calls.count(request)
            self.calls.append(request)
            self.contexts.append(structlog.contextvars.get_contextvars())
            self._cond.notify_all()
        return self.behaviour(request, n)

    def wait_calls(self, n: int) -> list[Request]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.calls) >= n, WAIT), self.calls
            return list(self.calls)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def started(
    reconciler: Scripted, clock: FakeClock, stop: threading.Event, **kw: object
) -> Controller:
    controller = Controller("models", reconciler, clock=clock, **kw)  # type: ignore[arg-type]
    assert controller.start(stop)
    return controller


def wait_draining(ctrl: Controller, clock: FakeClock) -> None:
    """Block until shut_down() waits on the clock: the delay waiter has gone, one waiter is left."""
    ctrl.queue._waiter.join(WAIT)
    assert not ctrl.queue._waiter.is_alive()
    assert clock.block_until_waiters(1)


def test_success_forgets_the_key(clock: FakeClock, stop: threading.Event) -> None:
    limiter, rec = Limiter(), Scripted()
    ctrl = started(rec, clock, stop, rate_limiter=limiter)
    ctrl.queue.add(A)
    ctrl.queue.add(B)  # sentinel: with one worker, A is fully handled before B starts
    assert rec.wait_calls(2) == [A, B]
    assert ctrl.shut_down()
    assert limiter.forgotten[:1] == [A]
    assert limiter.when_calls == []


def test_error_is_requeued_rate_limited_and_the_worker_survives(
    clock: FakeClock, stop: threading.Event
) -> None:
    def fail_once(key: Request, n: int) -> Result:
        if n == 0:
            raise RuntimeError("apiserver said no")
        return Result()

    limiter, rec = Limiter(delay=0.0), Scripted(fail_once)
    ctrl = started(rec, clock, stop, rate_limiter=limiter)
    with capture_logs() as logs:
        ctrl.queue.add(A)
        assert rec.wait_calls(2) == [A, A]  # same worker, retried
    assert ctrl.shut_down()
    assert limiter.when_calls == [A]
    assert limiter.forgotten == [A]  # after the successful retry
    (failed,) = [e for e in logs if e["event"] == "reconcile failed"]
    assert failed["log_level"] == "error"
    assert failed["controller"] == "models"
    assert (failed["namespace"], failed["name"]) == ("ns", "a")
    assert failed["error"] == "RuntimeError: apiserver said no"
    assert len(failed["reconcile_id"]) == 8


def test_error_wins_over_a_delayed_retry_and_waits_the_limiter_delay(
    clock: FakeClock, stop: threading.Event
) -> None:
    def fail_a_and_b(key: Request, n: int) -> Result:
        if key == C:
            return Result()
        raise ValueError(n)

    limiter, rec = Limiter(delay=7.0), Scripted(fail_a_and_b)
    ctrl = started(rec, clock, stop, rate_limiter=limiter)
    for key in (A, B, C):
        ctrl.queue.add(key)
    assert rec.wait_calls(3) == [A, B, C]  # one worker: A and B were fully handled
    assert limiter.when_calls == [A, B]
    assert ctrl.queue.wait_parked()
    clock.step(6.9)
    assert ctrl.queue.wait_parked()
    assert len(rec.calls) == 3
    clock.step(0.1)
    assert sorted(rec.wait_calls(5)[3:]) == [A, B]


def test_terminal_error_forgets_and_never_requeues(clock: FakeClock, stop: threading.Event) -> None:
    def terminal(key: Request, n: int) -> Result:
        if key == A:
            raise TerminalError("image reference is invalid")
        return Result()

    limiter, rec = Limiter(delay=0.0), Scripted(terminal)
    ctrl = started(rec, clock, stop, rate_limiter=limiter)
    with capture_logs() as logs:
        ctrl.queue.add(A)
        rec.wait_calls(1)
        ctrl.queue.add(B)
        rec.wait_calls(2)
        ctrl.queue.add(C)  # a requeued A would have been reconciled before C
        assert rec.wait_calls(3) == [A, B, C]
    assert limiter.when_calls == []
    assert limiter.forgotten[0] == A
    assert ctrl.queue.num_waiting() == 0
    assert [e["event"] for e in logs if e.get("name") == "a"] == ["reconcile failed permanently"]


def test_requeue_after_forgets_then_adds_after_the_delay(
    clock: FakeClock, stop: threading.Event
) -> None:
    limiter = Limiter()
    rec = Scripted(lambda key, n: Result(requeue_after=30.0) if key == A and n == 0 else Result())
    ctrl = started(rec, clock, stop, rate_limiter=limiter)
    ctrl.queue.add(A)
    ctrl.queue.add(B)
    assert rec.wait_calls(2) == [A, B]
    assert limiter.forgotten[0] == A
    assert ctrl.queue.num_waiting() == 1
    assert ctrl.queue.wait_parked()
    clock.step(29.0)
    assert ctrl.queue.wait_parked()
    assert len(rec.calls) == 2
    clock.step(1.0)
    assert rec.wait_calls(3) == [A, B, A]
    assert limiter.when_calls == []


def test_requeue_true_goes_through_the_rate_limiter(
    clock: FakeClock, stop: threading.Event
) -> None:
    limiter = Limiter(delay=0.0)
    rec = Scripted(lambda key, n: Result(requeue=n == 0))
    ctrl = started(rec, clock, stop, rate_limiter=limiter)
    ctrl.queue.add(A)
    assert rec.wait_calls(2) == [A, A]
    assert limiter.when_calls == [A]


def test_one_key_is_never_reconciled_by_two_workers(
    clock: FakeClock, stop: threading.Event
) -> None:
    a_started, release = threading.Event(), threading.Event()
    lock = threading.Lock()
    in_flight: set[Request] = set()
    overlaps: list[Request] = []

    def guarded(key: Request, n: int) -> Result:
        with lock:
            if key in in_flight:
                overlaps.append(key)
            in_flight.add(key)
        try:
            if key == A and n == 0:
                a_started.set()
                assert release.wait(WAIT)
            return Result()
        finally:
            with lock:
                in_flight.discard(key)

    rec = Scripted(guarded)
    ctrl = started(rec, clock, stop, workers=4)
    ctrl.queue.add(A)
    assert a_started.wait(WAIT)
    for _ in range(3):
        ctrl.queue.add(A)  # parked in dirty while A is being reconciled
    for key in (B, C, D):
        ctrl.queue.add(key)
    calls = rec.wait_calls(4)
    assert calls.count(A) == 1  # three idle workers, yet none took A
    release.set()
    assert rec.wait_calls(5).count(A) == 2  # three adds collapsed into one follow-up
    ctrl.queue.add(E)
    rec.wait_calls(6)
    assert ctrl.shut_down()
    assert rec.calls.count(A) == 2
    assert overlaps == []


def test_each_reconcile_binds_a_fresh_id_into_the_log_context(
    clock: FakeClock, stop: threading.Event
) -> None:
    rec = Scripted()
    ctrl = started(rec, clock, stop)
    ctrl.queue.add(A)
    rec.wait_calls(1)
    ctrl.queue.add(A)
    rec.wait_calls(2)
    first, second = rec.contexts
    assert first["controller"] == "models"
    assert (first["namespace"], first["name"]) == ("ns", "a")
    assert first["reconcile_id"] != second["reconcile_id"]
    assert ctrl.shut_down()


def test_workers_start_only_after_caches_sync(clock: FakeClock, stop: threading.Event) -> None:
    synced = threading.Event()
    rec = Scripted()
    ctrl = Controller("models", rec, clock=clock, has_synced=[lambda: True, synced.is_set])
    ctrl.queue.add(A)
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(ctrl.start(stop)))
    t.start()
    assert clock.block_until_waiters(2)  # the queue's delay waiter, and start() polling caches
    clock.step(0.1)
    assert clock.block_until_waiters(2)
    assert rec.calls == []  # no worker exists yet
    synced.set()
    clock.step(0.1)
    t.join(WAIT)
    assert result == [True]
    assert rec.wait_calls(1) == [A]
    assert ctrl.shut_down()


def test_cache_sync_timeout_fails_clearly_and_starts_no_worker(
    clock: FakeClock, stop: threading.Event
) -> None:
    rec = Scripted()
    ctrl = Controller("models", rec, clock=clock, has_synced=[lambda: False])
    errors: list[BaseException] = []

    def start() -> None:
        try:
            ctrl.start(stop)
        except CacheSyncTimeoutError as e:
            errors.append(e)

    t = threading.Thread(target=start)
    t.start()
    assert clock.block_until_waiters(2)  # the queue's delay waiter, and start() polling caches
    clock.step(120.0)
    t.join(WAIT)
    (error,) = errors
    assert str(error) == "controller models: caches not synced after 120 s"
    assert ctrl.queue.shutting_down()
    assert rec.calls == []


def test_start_returns_false_when_stopped_while_waiting_for_caches(clock: FakeClock) -> None:
    stop = threading.Event()
    stop.set()
    ctrl = Controller("models", Scripted(), clock=clock, has_synced=[lambda: False])
    assert ctrl.start(stop) is False
    assert ctrl.queue.shutting_down()


def test_shut_down_waits_for_the_reconcile_in_flight_and_starts_no_new_one(
    clock: FakeClock, stop: threading.Event
) -> None:
    a_started, release = threading.Event(), threading.Event()

    def slow(key: Request, n: int) -> Result:
        if key == A:
            a_started.set()
            assert release.wait(WAIT)
        return Result()

    rec = Scripted(slow)
    ctrl = started(rec, clock, stop)
    ctrl.queue.add(A)
    ctrl.queue.add(B)
    assert a_started.wait(WAIT)
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(ctrl.shut_down()))
    t.start()
    wait_draining(ctrl, clock)
    assert t.is_alive()
    release.set()
    t.join(WAIT)
    assert result == [True]
    assert rec.calls == [A]  # B was queued but not started after shutdown began
    assert not any(th.is_alive() for th in ctrl._threads)


def test_shut_down_gives_up_after_its_timeout(clock: FakeClock, stop: threading.Event) -> None:
    a_started, release = threading.Event(), threading.Event()

    def stuck(key: Request, n: int) -> Result:
        a_started.set()
        assert release.wait(WAIT)
        return Result()

    ctrl = started(Scripted(stuck), clock, stop, shutdown_timeout=30.0)
    ctrl.queue.add(A)
    assert a_started.wait(WAIT)
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(ctrl.shut_down()))
    t.start()
    wait_draining(ctrl, clock)
    clock.step(29.9)
    wait_draining(ctrl, clock)
    assert t.is_alive()
    clock.step(0.1)
    t.join(WAIT)
    release.set()
    assert result == [False]


def test_run_blocks_until_stop_then_shuts_down(clock: FakeClock) -> None:
    stop = threading.Event()
    rec = Scripted()
    ctrl = Controller("models", rec, clock=clock)
    t = threading.Thread(target=ctrl.run, args=(stop,))
    t.start()
    ctrl.queue.add(A)
    rec.wait_calls(1)
    assert t.is_alive()
    stop.set()
    t.join(WAIT)
    assert not t.is_alive()
    assert ctrl.queue.shutting_down()


def test_a_controller_starts_once(clock: FakeClock, stop: threading.Event) -> None:
    ctrl = started(Scripted(), clock, stop)
    with pytest.raises(RuntimeError, match="already started"):
        ctrl.start(stop)
    assert ctrl.shut_down()


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="workers must be >= 1"):
        Controller("models", Scripted(), workers=0)
