"""A workqueue that can add a key later (client-go's delaying queue).

One waiter thread owns a min-heap of (ready time, key). Guarantees:

* :meth:`DelayingQueue.add_after` with ``seconds <= 0`` is an immediate :meth:`~Queue.add`;
* a key waits in the heap at most once; adding it again keeps the *earliest* ready time, so
  "after 30 s" then "after 5 s" fires at 5 s, and so does the reverse;
* an immediate add supersedes a pending delayed add of the same key: the delayed entry is dropped
  and the key is handed out once, now (controller-runtime's priority-queue behaviour, not classic
  client-go where both fire). Reconcilers are level-based, so the reconcile that runs now decides
  any later requeue through its own result;
* when a ready time passes, the key is added with the usual dirty/processing rules; the waiter also
  wakes at least every ``heartbeat`` seconds (10 s) as a guard against a missed wake-up;
* every ``add_after`` call counts one retry (``workqueue_retries_total``), unless shut down or
  called with ``retry=False`` (a debounced notification, see
  :func:`aimctrl.machinery.handler.debounced`);
* shutting the queue down stops the waiter and discards every key still waiting in the heap.

Time is the injected clock's; :meth:`DelayingQueue.wait_parked` is a test seam that lets a test
step a fake clock only once the waiter has absorbed everything that happened before.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Generic

from aimctrl.machinery.clock import REAL_CLOCK, Clock
from aimctrl.machinery.metricsprovider import NOOP_METRICS, MetricsProvider
from aimctrl.machinery.queue import K, Queue

__all__ = ["DEFAULT_HEARTBEAT", "DelayingQueue"]

DEFAULT_HEARTBEAT = 10.0
"""Longest the waiter sleeps without looking at the heap (client-go's ``maxWait``)."""


@dataclass(order=True, slots=True)
class _Entry(Generic[K]):
    ready_at: float
    seq: int
    key: K = field(compare=False)


class DelayingQueue(Queue[K]):
    """A :class:`Queue` with :meth:`add_after`; call a shut-down method to stop its thread."""

    def __init__(
        self,
        *,
        name: str = "",
        clock: Clock = REAL_CLOCK,
        metrics: MetricsProvider = NOOP_METRICS,
        heartbeat: float = DEFAULT_HEARTBEAT,
    ) -> None:
        super().__init__(name=name, clock=clock, metrics=metrics)
        self._heartbeat = heartbeat
        self._heap_lock = threading.Lock()
        self._heap_changed = threading.Condition(self._heap_lock)
        self._parked_changed = threading.Condition(self._heap_lock)
        self._heap: list[_Entry[K]] = []
        self._waiting: dict[K, _Entry[K]] = {}
        self._seq = itertools.count()
        self._stopped = False
        self._parked_until: float | None = None
        self._waiter = threading.Thread(
            target=self._wait_loop, name=f"delaying-queue-{name or 'unnamed'}", daemon=True
        )
        self._waiter.start()

    def add(self, key: K) -> None:
        """Add ``key`` now, dropping any delayed add of it that is still waiting."""
        with self._heap_lock:
            self._waiting.pop(key, None)  # its heap entry is now stale and will be skipped
        super().add(key)

    def add_after(self, key: K, seconds: float, *, retry: bool = True) -> None:
        """Add ``key`` once ``seconds`` have passed on the queue's clock. ``retry=False``: not a
        retry (a debounced notification), so ``workqueue_retries_total`` is not counted."""
        with self._lock:
            if self._shutting_down:
                return
            if self._recorder is not None and retry:
                self._recorder.metrics.retries.inc()
        if seconds <= 0:
            self.add(key)
            return
        ready_at = self._clock.now() + seconds
        with self._heap_lock:
            if self._stopped:
                return
            current = self._waiting.get(key)
            if current is not None and current.ready_at <= ready_at:
                return
            entry = _Entry(ready_at, next(self._seq), key)
            self._waiting[key] = entry
            heapq.heappush(self._heap, entry)
            self._parked_until = None
            self._heap_changed.notify()

    def num_waiting(self) -> int:
        """Keys waiting in the heap for their ready time."""
        with self._heap_lock:
            return len(self._waiting)

    def wait_parked(self, real_timeout: float = 5.0) -> bool:
        """Test seam: block until the waiter sleeps towards a future time, having handled every
        ``add_after`` and every clock step so far. Returns False on timeout or once stopped."""
        deadline = time.monotonic() + real_timeout
        with self._heap_lock:
            while not self._stopped:
                if self._parked_until is not None and self._parked_until > self._clock.now():
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._parked_changed.wait(left)
            return False

    def _on_shut_down(self) -> None:
        with self._heap_lock:
            self._stopped = True
            self._heap.clear()
            self._waiting.clear()
            self._parked_until = None
            self._heap_changed.notify_all()
            self._parked_changed.notify_all()

    def _wait_loop(self) -> None:
        while True:
            with self._heap_lock:
                if self._stopped:
                    return
                now = self._clock.now()
                due = self._pop_due(now)
                if not due:
                    timeout = self._heartbeat
                    if self._heap:
                        timeout = min(timeout, self._heap[0].ready_at - now)
                    self._parked_until = now + timeout
                    self._parked_changed.notify_all()
                    self._clock.wait(self._heap_changed, timeout)
                    self._parked_until = None
                    continue
            # The heap lock is released here: Queue.add takes the queue lock, and no path may hold
            # both. Queue.add (not self.add) because these entries are already out of the heap.
            for key in due:
                Queue.add(self, key)

    def _pop_due(self, now: float) -> list[K]:
        """Pop every live entry whose time has come; drop stale ones found on the way."""
        due: list[K] = []
        while self._heap:
            head = self._heap[0]
            if self._waiting.get(head.key) is not head:
                heapq.heappop(self._heap)
                continue
            if head.ready_at > now:
                break
            heapq.heappop(self._heap)
            del self._waiting[head.key]
            due.append(head.key)
        return due
