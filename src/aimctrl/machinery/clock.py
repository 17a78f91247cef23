"""Time as an injected dependency.

Everything in :mod:`aimctrl.machinery` that waits or measures time takes a :class:`Clock`, so unit
tests step a :class:`FakeClock` instead of sleeping. ``REAL_CLOCK`` is the default in production.

Guarantees of :class:`FakeClock`: ``now()`` only moves when :meth:`FakeClock.step` or
:meth:`FakeClock.set_time` is called; a thread blocked in :meth:`FakeClock.wait` wakes as soon as
the fake time reaches its deadline or the condition it waits on is notified.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["REAL_CLOCK", "Clock", "FakeClock", "RealClock"]


class Clock(Protocol):
    """A source of monotonic time that can also block a thread on a condition with a timeout."""

    def now(self) -> float:
        """Monotonic seconds; only differences are meaningful."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch, for timestamps written to the API."""
        ...

    def wait(self, cond: threading.Condition, timeout: float | None) -> bool:
        """Wait on ``cond`` (held by the caller) for at most ``timeout`` seconds of this clock.

        Returns False if the timeout elapsed, True if notified (spurious wake-ups allowed).
        """
        ...

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Sleep ``seconds`` of this clock; return True early if ``stop`` is set."""
        ...


class RealClock:
    """The process's monotonic clock."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def wait(self, cond: threading.Condition, timeout: float | None) -> bool:
        return cond.wait(timeout)

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        if stop is None:
            stop = threading.Event()
        return stop.wait(max(0.0, seconds))


REAL_CLOCK: Clock = RealClock()


class FakeClock:
    """A clock that tests move by hand.

    Waiters registered through :meth:`wait` or :meth:`sleep` are woken when :meth:`step` moves time
    past their deadline. :meth:`has_waiters` lets a test wait (with a real, short timeout) until a
    background thread has actually blocked before stepping.
    """

    def __init__(self, start: float = 1_000.0, wall_start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self._lock = threading.Lock()
        self._waiters: list[tuple[float, threading.Condition | threading.Event]] = []
        self._changed = threading.Condition(self._lock)

    def now(self) -> float:
        with self._lock:
            return self._now

    def wall(self) -> float:
        with self._lock:
            return self._now + self._wall_offset

    def step(self, seconds: float) -> None:
        """Advance time by ``seconds`` and wake every waiter whose deadline has passed."""
        with self._lock:
            self._now += seconds
            due = [w for w in self._waiters if w[0] <= self._now]
            self._waiters = [w for w in self._waiters if w[0] > self._now]
        for _, target in due:
            _wake(target)

    def set_time(self, t: float) -> None:
        self.step(t - self.now())

    def has_waiters(self) -> bool:
        with self._lock:
            return bool(self._waiters)

    def waiter_count(self) -> int:
        with self._lock:
            return len(self._waiters)

    def block_until_waiters(self, n: int = 1, real_timeout: float = 5.0) -> bool:
        """Block (in real time, briefly) until at least ``n`` threads wait on this clock."""
        deadline = time.monotonic() + real_timeout
        with self._changed:
            while len(self._waiters) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def _register(self, deadline: float, target: threading.Condition | threading.Event) -> None:
        with self._changed:
            self._waiters.append((deadline, target))
            self._changed.notify_all()

    def _unregister(self, target: threading.Condition | threading.Event) -> None:
        with self._lock:
            self._waiters = [w for w in self._waiters if w[1] is not target]

    def wait(self, cond: threading.Condition, timeout: float | None) -> bool:
        if timeout is None:
            return cond.wait()
        deadline = self.now() + timeout
        if timeout <= 0:
            return False
        self._register(deadline, cond)
        try:
            cond.wait()
        finally:
            self._unregister(cond)
        return self.now() < deadline

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        ev = stop if stop is not None else threading.Event()
        if ev.is_set():
            return True
        if seconds <= 0:
            return ev.is_set()
        deadline = self.now() + seconds
        waker = threading.Event()
        self._register(deadline, waker)
        try:
            while not ev.is_set() and not waker.is_set():
                # Poll the stop event in short real slices; fake time only moves via step().
                waker.wait(0.01)
        finally:
            self._unregister(waker)
        return ev.is_set()


def _wake(target: threading.Condition | threading.Event) -> None:
    if isinstance(target, threading.Event):
        target.set()
    else:
        with target:
            target.notify_all()
