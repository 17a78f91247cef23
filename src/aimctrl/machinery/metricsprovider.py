"""Metric hooks for the machinery, free of any metrics library (client-go's workqueue metrics).

The machinery records through the small protocols here; :mod:`aimctrl.metrics` implements them on
prometheus_client, and :data:`NOOP_METRICS` (the default) records nothing.

Guarantees:

* a provider is asked for a metric set once per queue or controller, and every series of that set
  exists from then on (a Prometheus provider pre-creates them at 0);
* hooks are called with the owning structure's lock held, so implementations must be quick and must
  never call back into the machinery;
* the in-flight figures (``workqueue_unfinished_work_seconds`` and
  ``workqueue_longest_running_processor_seconds``) are pulled, not pushed: the queue hands the
  provider an ``in_flight`` callable that computes both from the current processing set, and the
  provider calls it whenever it wants fresh values (the Prometheus provider: on every scrape).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple, Protocol

__all__ = [
    "NOOP_METRICS",
    "ControllerMetrics",
    "Counter",
    "Gauge",
    "Histogram",
    "InFlight",
    "MetricsProvider",
    "NoopMetricsProvider",
    "QueueMetrics",
    "ReconcileResult",
]


class Counter(Protocol):
    def inc(self) -> None: ...


class Gauge(Protocol):
    def inc(self) -> None: ...

    def dec(self) -> None: ...


class Histogram(Protocol):
    def observe(self, value: float, /) -> None: ...


class InFlight(NamedTuple):
    """Ages of the keys being processed right now."""

    unfinished_seconds: float
    """Sum of the ages of every in-flight key (rises linearly at rate r with r stuck workers)."""
    longest_seconds: float
    """Age of the oldest in-flight key; 0 when nothing is in flight."""


class ReconcileResult(StrEnum):
    """The ``result`` label of ``controller_runtime_reconcile_total``."""

    SUCCESS = "success"
    ERROR = "error"
    REQUEUE = "requeue"
    REQUEUE_AFTER = "requeue_after"


@dataclass(frozen=True, slots=True)
class QueueMetrics:
    """The series of one workqueue (client-go's names, without the ``workqueue_`` prefix)."""

    depth: Gauge
    adds: Counter
    queue_duration: Histogram
    work_duration: Histogram
    retries: Counter


@dataclass(frozen=True, slots=True)
class ControllerMetrics:
    """The series of one controller (controller-runtime's names)."""

    reconcile_total: Mapping[ReconcileResult, Counter]
    reconcile_errors: Counter
    terminal_reconcile_errors: Counter
    reconcile_time: Histogram
    active_workers: Gauge


class MetricsProvider(Protocol):
    def queue_metrics(self, name: str, *, in_flight: Callable[[], InFlight]) -> QueueMetrics:
        """Series for the queue ``name``; ``in_flight`` may be called from any thread."""
        ...

    def controller_metrics(self, name: str, *, max_concurrent_reconciles: int) -> ControllerMetrics:
        """Series for the controller ``name``, which runs ``max_concurrent_reconciles`` workers."""
        ...


class _Nothing:
    """Every hook, doing nothing."""

    def inc(self) -> None:
        pass

    def dec(self) -> None:
        pass

    def observe(self, value: float, /) -> None:
        pass


_NOTHING = _Nothing()


class NoopMetricsProvider:
    """A provider whose series record nothing."""

    def queue_metrics(self, name: str, *, in_flight: Callable[[], InFlight]) -> QueueMetrics:
        return QueueMetrics(
            depth=_NOTHING,
            adds=_NOTHING,
            queue_duration=_NOTHING,
            work_duration=_NOTHING,
            retries=_NOTHING,
        )

    def controller_metrics(self, name: str, *, max_concurrent_reconciles: int) -> ControllerMetrics:
        return ControllerMetrics(
            reconcile_total=dict.fromkeys(ReconcileResult, _NOTHING),
            reconcile_errors=_NOTHING,
            terminal_reconcile_errors=_NOTHING,
            reconcile_time=_NOTHING,
            active_workers=_NOTHING,
        )


NOOP_METRICS: MetricsProvider = NoopMetricsProvider()
