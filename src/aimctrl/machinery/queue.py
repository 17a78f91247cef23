"""The base workqueue: a FIFO of keys with client-go's dirty/processing semantics.

State, all under one lock: ``queue`` (keys ready to hand out, in order), ``dirty`` (keys that need
work) and ``processing`` (keys a worker holds). Guarantees:

* a key is never handed to two workers at once, whatever the number of workers;
* adds collapse: at most one queued copy plus at most one in-flight copy of a key exist; any number
  of adds while a key is processing cause exactly one more hand-out, after :meth:`Queue.done`;
* keys are handed out in the order they became ready;
* after :meth:`Queue.shut_down`, adds are dropped silently, :meth:`Queue.get` still returns keys
  already queued and then ``(None, True)`` forever;
* :meth:`Queue.shut_down_with_drain` additionally waits (bounded by its timeout, measured on the
  injected clock) until no key is in flight; a later :meth:`Queue.shut_down` ends that wait.

Keys are small hashable values (``Request``), never objects: a worker re-reads current state.
A queue with a non-empty ``name`` reports client-go's workqueue metrics to its provider.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

from aimctrl.machinery.clock import REAL_CLOCK, Clock
from aimctrl.machinery.metricsprovider import NOOP_METRICS, InFlight, MetricsProvider, QueueMetrics

__all__ = ["Queue"]

K = TypeVar("K", bound=Hashable)


class Queue(Generic[K]):
    """A deduplicating FIFO that never hands one key to two workers at once."""

    def __init__(
        self,
        *,
        name: str = "",
        clock: Clock = REAL_CLOCK,
        metrics: MetricsProvider = NOOP_METRICS,
    ) -> None:
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)  # getters wait here
        self._idle = threading.Condition(self._lock)  # a draining shut_down waits here
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._shutting_down = False
        self._drain = False
        self._recorder: _Recorder[K] | None = None
        if name:
            self._recorder = _Recorder(clock)
            self._recorder.metrics = metrics.queue_metrics(name, in_flight=self._in_flight)

    def add(self, key: K) -> None:
        """Mark ``key`` as needing work; a no-op if it already does or the queue is shut down."""
        with self._lock:
            self._add_locked(key)

    def _add_locked(self, key: K) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if self._recorder is not None:
            self._recorder.add(key)
        if key in self._processing:
            return  # done() queues it again
        self._queue.append(key)
        self._ready.notify()

    def get(self) -> tuple[K | None, bool]:
        """Block until a key is ready; return ``(key, False)``, or ``(None, True)`` once shut down.

        The caller owns the key until it calls :meth:`done` with it.
        """
        with self._lock:
            while not self._queue and not self._shutting_down:
                self._ready.wait()
            if not self._queue:
                return None, True
            key = self._queue.popleft()
            self._processing.add(key)
            self._dirty.discard(key)
            if self._recorder is not None:
                self._recorder.get(key)
            return key, False

    def done(self, key: K) -> None:
        """Release ``key``; if it was added while processing, queue it again now."""
        with self._lock:
            self._processing.discard(key)
            if self._recorder is not None:
                self._recorder.done(key)
            if key in self._dirty:
                self._queue.append(key)
                self._ready.notify()
            elif not self._processing:
                self._idle.notify_all()

    def __len__(self) -> int:
        """Keys ready to hand out (not the ones in flight, nor delayed ones)."""
        with self._lock:
            return len(self._queue)

    def len(self) -> int:
        """Same as ``len(queue)``, in client-go's spelling."""
        return len(self)

    def shut_down(self) -> None:
        """Stop accepting adds, wake every getter, and end any draining wait."""
        with self._lock:
            self._shutting_down = True
            self._drain = False
            self._ready.notify_all()
            self._idle.notify_all()
        self._on_shut_down()

    def shut_down_with_drain(self, timeout: float | None = None) -> bool:
        """Shut down, then wait until no key is in flight; True if that happened in time.

        ``timeout`` is in seconds of the queue's clock (None: no limit). Keys still queued are
        handed out by :meth:`get` as usual; only in-flight keys are waited for.
        """
        with self._lock:
            self._shutting_down = True
            self._drain = True
            self._ready.notify_all()
        self._on_shut_down()
        deadline = None if timeout is None else self._clock.now() + timeout
        with self._lock:
            while self._drain and self._processing:
                if deadline is None:
                    self._idle.wait()
                    continue
                left = deadline - self._clock.now()
                if left <= 0:
                    break
                self._clock.wait(self._idle, left)
            drained = not self._processing
            self._drain = False
            return drained

    def shutting_down(self) -> bool:
        with self._lock:
            return self._shutting_down

    def _on_shut_down(self) -> None:
        """Hook for subclasses: stop background threads. Called without the lock held."""

    def _in_flight(self) -> InFlight:
        with self._lock:
            if self._recorder is None:
                return InFlight(0.0, 0.0)
            return self._recorder.in_flight()


class _Recorder(Generic[K]):
    """Timestamps behind the latency metrics; every method runs under the queue's lock."""

    metrics: QueueMetrics

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._added_at: dict[K, float] = {}
        self._started_at: dict[K, float] = {}

    def add(self, key: K) -> None:
        self.metrics.adds.inc()
        self.metrics.depth.inc()
        self._added_at.setdefault(key, self._clock.now())

    def get(self, key: K) -> None:
        now = self._clock.now()
        self.metrics.depth.dec()
        added = self._added_at.pop(key, None)
        if added is not None:
            self.metrics.queue_duration.observe(now - added)
        self._started_at[key] = now

    def done(self, key: K) -> None:
        started = self._started_at.pop(key, None)
        if started is not None:
            self.metrics.work_duration.observe(self._clock.now() - started)

    def in_flight(self) -> InFlight:
        if not self._started_at:
            return InFlight(0.0, 0.0)
        now = self._clock.now()
        ages = [now - t for t in self._started_at.values()]
        return InFlight(sum(ages), max(ages))
