"""The controller runner: worker threads draining one rate-limited workqueue into a reconciler.

Guarantees:

* workers start only after every ``has_synced`` callable returned True, polled on the injected
  clock; if that takes longer than ``cache_sync_timeout`` (120 s), :meth:`Controller.start` raises
  :class:`CacheSyncTimeoutError` and no worker runs;
* one key is never reconciled by two workers at once (the queue's guarantee), with any ``workers``;
* the outcome of each reconcile drives the queue exactly as :mod:`aimctrl.machinery.reconcile`
  states: exception → ``add_rate_limited``; :class:`TerminalError` → ``forget``, no requeue;
  ``Result(requeue_after=s)`` → ``forget`` + ``add_after(s)``; ``Result(requeue=True)`` →
  ``add_rate_limited``; ``Result()`` → ``forget``. A raised error wins over any result;
* an exception from a reconciler is logged and counted, and never ends a worker;
* every reconcile gets a fresh ``reconcile_id``, bound with ``controller``, ``namespace`` and
  ``name`` into structlog's context variables for the duration of the call, so the reconciler's
  own log lines carry them (given ``merge_contextvars`` in the processor chain);
* :meth:`Controller.shut_down` stops the queue, starts no new reconcile, and waits at most
  ``shutdown_timeout`` (30 s) for the reconciles in flight.

Event handlers feed the controller only through :attr:`Controller.queue` (``add``): they enqueue and
return, never reconcile.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence

import structlog

from aimctrl.machinery.clock import REAL_CLOCK, Clock
from aimctrl.machinery.metricsprovider import NOOP_METRICS, MetricsProvider, ReconcileResult
from aimctrl.machinery.ratelimit import RateLimiter
from aimctrl.machinery.ratelimitingqueue import RateLimitingQueue
from aimctrl.machinery.reconcile import Reconciler, Request, TerminalError

__all__ = [
    "DEFAULT_CACHE_SYNC_TIMEOUT",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "CacheSyncTimeoutError",
    "Controller",
]

DEFAULT_CACHE_SYNC_TIMEOUT = 120.0
DEFAULT_SHUTDOWN_TIMEOUT = 30.0
_SYNC_POLL_INTERVAL = 0.1
_WORKER_JOIN_TIMEOUT = 5.0  # real seconds; only used once the queue reports no reconcile in flight
_MAX_ERROR_CHARS = 1000
_ids = random.Random()  # noqa: S311 - log correlation ids, not secrets

_log = structlog.get_logger("aimctrl.controller")


class CacheSyncTimeoutError(Exception):
    """The caches a controller depends on did not sync in time."""


class Controller:
    """Runs ``workers`` threads that reconcile the keys of :attr:`queue`."""

    def __init__(
        self,
        name: str,
        reconciler: Reconciler,
        *,
        workers: int = 1,
        has_synced: Sequence[Callable[[], bool]] = (),
        rate_limiter: RateLimiter | None = None,
        clock: Clock = REAL_CLOCK,
        metrics: MetricsProvider = NOOP_METRICS,
        cache_sync_timeout: float = DEFAULT_CACHE_SYNC_TIMEOUT,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    ) -> None:
        if workers < 1:
            raise ValueError(f"controller {name}: workers must be >= 1, got {workers}")
        self.name = name
        self.workers = workers
        self._reconciler = reconciler
        self._has_synced = list(has_synced)
        self._clock = clock
        self._cache_sync_timeout = cache_sync_timeout
        self._shutdown_timeout = shutdown_timeout
        self.queue: RateLimitingQueue[Request] = RateLimitingQueue(
            rate_limiter=rate_limiter, name=name, clock=clock, metrics=metrics
        )
        self._metrics = metrics.controller_metrics(name, max_concurrent_reconciles=workers)
        self._threads: list[threading.Thread] = []
        self._threads_lock = threading.Lock()  # start() and shut_down() may race

    def add_has_synced(self, has_synced: Callable[[], bool]) -> None:
        """Also wait for ``has_synced`` before starting workers; call before :meth:`start`."""
        self._has_synced.append(has_synced)

    def wait_for_cache_sync(self, stop: threading.Event) -> bool:
        """Poll the ``has_synced`` callables; True once all are, False if ``stop`` is set first.

        Raises :class:`CacheSyncTimeoutError` after ``cache_sync_timeout`` seconds.
        """
        deadline = self._clock.now() + self._cache_sync_timeout
        while not all(synced() for synced in self._has_synced):
            if stop.is_set():
                return False
            left = deadline - self._clock.now()
            if left <= 0:
                raise CacheSyncTimeoutError(
                    f"controller {self.name}: caches not synced after "
                    f"{self._cache_sync_timeout:g} s"
                )
            self._clock.sleep(min(_SYNC_POLL_INTERVAL, left), stop)
        return True

    def start(self, stop: threading.Event) -> bool:
        """Wait for the caches, then start the workers and return True (False if stopped first).

        Raises :class:`CacheSyncTimeoutError` (and shuts the queue down) if the caches never sync.
        """
        if self._threads:
            raise RuntimeError(f"controller {self.name} was already started")
        _log.info("waiting for caches to sync", controller=self.name)
        try:
            synced = self.wait_for_cache_sync(stop)
        except CacheSyncTimeoutError:
            self.queue.shut_down()
            raise
        if not synced:
            self.queue.shut_down()
            return False
        _log.info("starting workers", controller=self.name, workers=self.workers)
        for i in range(self.workers):
            thread = threading.Thread(
                target=self._worker, name=f"{self.name}-worker-{i}", daemon=True
            )
            with self._threads_lock:
                # Listed only once started: a concurrent shut_down() joins started threads only.
                thread.start()
                self._threads.append(thread)
        return True

    def shut_down(self) -> bool:
        """Stop the queue and wait (bounded) for in-flight reconciles; True if all finished."""
        drained = self.queue.shut_down_with_drain(self._shutdown_timeout)
        if not drained:
            _log.warning(
                "shutdown timed out with reconciles in flight",
                controller=self.name,
                timeout=self._shutdown_timeout,
            )
            return False
        with self._threads_lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(_WORKER_JOIN_TIMEOUT)
        _log.info("workers stopped", controller=self.name)
        return True

    def run(self, stop: threading.Event) -> None:
        """:meth:`start`, block until ``stop`` is set, then :meth:`shut_down`."""
        try:
            if self.start(stop):
                stop.wait()
        finally:
            self.shut_down()

    def _worker(self) -> None:
        while True:
            key, shutdown = self.queue.get()
            if shutdown or key is None:
                return
            try:
                if self.queue.shutting_down():
                    return  # stopping: keys still queued are left for the next leader / start
                self._process(key)
            except Exception:  # noqa: BLE001 - the last line of defence: a worker never dies
                _log.exception("worker failed outside reconcile", controller=self.name)
            finally:
                self.queue.done(key)

    def _process(self, key: Request) -> None:
        fields = {
            "controller": self.name,
            "namespace": key.namespace,
            "name": key.name,
            # A log correlation id, not a secret: os.urandom per reconcile showed up in profiles.
            "reconcile_id": f"{_ids.getrandbits(32):08x}",
        }
        metrics = self._metrics
        with structlog.contextvars.bound_contextvars(**fields):
            metrics.active_workers.inc()
            started = self._clock.now()
            try:
                outcome = self._reconcile(key, fields)
            finally:
                metrics.reconcile_time.observe(self._clock.now() - started)
                metrics.active_workers.dec()
        metrics.reconcile_total[outcome].inc()

    def _reconcile(self, key: Request, fields: dict[str, str]) -> ReconcileResult:
        """Call the reconciler once and act on the queue according to its outcome."""
        try:
            result = self._reconciler.reconcile(key)
        except TerminalError as e:
            self.queue.forget(key)
            self._metrics.reconcile_errors.inc()
            self._metrics.terminal_reconcile_errors.inc()
            _log.error("reconcile failed permanently", error=_short(e), **fields)
            return ReconcileResult.ERROR
        except Exception as e:  # noqa: BLE001 - any reconciler failure means "retry later"
            self.queue.add_rate_limited(key)
            self._metrics.reconcile_errors.inc()
            _log.error("reconcile failed", error=_short(e), exc_info=e, **fields)
            return ReconcileResult.ERROR
        if result.requeue_after > 0:
            self.queue.forget(key)
            self.queue.add_after(key, result.requeue_after)
            return ReconcileResult.REQUEUE_AFTER
        if result.requeue:
            self.queue.add_rate_limited(key)
            return ReconcileResult.REQUEUE
        self.queue.forget(key)
        return ReconcileResult.SUCCESS


def _short(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= _MAX_ERROR_CHARS else text[:_MAX_ERROR_CHARS] + "…"
