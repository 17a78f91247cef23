"""Prometheus metrics: controller-runtime's names and labels on one registry, plus aimctrl's own.

:class:`PrometheusMetrics` implements :class:`aimctrl.machinery.metricsprovider.MetricsProvider`
on a private :class:`~prometheus_client.CollectorRegistry` (never the global one). Guarantees:

* names, label names and buckets are controller-runtime's verbatim, so existing dashboards and
  alerts work: ``controller_runtime_*{controller}`` and ``workqueue_*{name, controller}`` (both
  labels carry the controller name);
* every series of a controller (each ``result`` of ``reconcile_total`` included) and of its queue
  exists at 0 as soon as the controller is built; the discovery and model series are pre-created
  for the label values given to the constructor;
* ``workqueue_unfinished_work_seconds`` and ``workqueue_longest_running_processor_seconds`` are
  computed on every scrape from the queue's processing set (client-go recomputes them every 500 ms;
  on-scrape values are never staler and need no thread);
* no ``*_created`` series: created-timestamps are switched off process-wide (controller-runtime
  exposes none, and they double the series count).

:func:`serve_metrics` serves ``/metrics`` over HTTP from a daemon thread until a stop event is set.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics import disable_created_metrics

from aimctrl.machinery.metricsprovider import (
    ControllerMetrics,
    InFlight,
    QueueMetrics,
    ReconcileResult,
)

__all__ = [
    "DISCOVERY_MODES",
    "DISCOVERY_OUTCOMES",
    "MODEL_KINDS",
    "MODEL_STATUSES",
    "RECONCILE_TIME_BUCKETS",
    "WORKQUEUE_BUCKETS",
    "PrometheusMetrics",
    "serve_metrics",
]

WORKQUEUE_BUCKETS: tuple[float, ...] = tuple(float(f"1e{e}") for e in range(-8, 4))
"""1e-8 … 1e3 s, times 10 each (client-go / controller-runtime workqueue histograms)."""

RECONCILE_TIME_BUCKETS: tuple[float, ...] = (
    *(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5),
    *(0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0),
    *(6.0, 7.0, 8.0, 9.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0),
)
"""controller-runtime's 40 buckets for ``controller_runtime_reconcile_time_seconds``."""

DISCOVERY_MODES = ("inline", "job")
DISCOVERY_OUTCOMES = ("success", "auth_failure", "not_found", "invalid_metadata", "error")
MODEL_KINDS = ("AIMClusterModel", "AIMModel")
MODEL_STATUSES = ("Pending", "Progressing", "Ready", "Degraded", "Failed", "NotAvailable")

_log = structlog.get_logger("aimctrl.metrics")


class PrometheusMetrics:
    """Every aimctrl metric, registered on :attr:`registry`."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        discovery_modes: Iterable[str] = DISCOVERY_MODES,
        discovery_outcomes: Iterable[str] = DISCOVERY_OUTCOMES,
        model_kinds: Iterable[str] = MODEL_KINDS,
        model_statuses: Iterable[str] = MODEL_STATUSES,
    ) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream
        self.registry = registry if registry is not None else CollectorRegistry()
        self._model_statuses = tuple(model_statuses)
        self._define_controller_metrics()
        self._define_workqueue_metrics()
        self._define_aimctrl_metrics()
        outcomes = tuple(discovery_outcomes)
        for mode in discovery_modes:
            for outcome in outcomes:
                self.discovery_duration.labels(mode=mode, outcome=outcome)
                self.discovery_total.labels(mode=mode, outcome=outcome)
        for kind in model_kinds:
            self.set_models(kind, {})

    def _define_controller_metrics(self) -> None:
        r = self.registry
        self.reconcile_total = Counter(
            "controller_runtime_reconcile_total",
            "Total number of reconciliations per controller",
            ["controller", "result"],
            registry=r,
        )
        self.reconcile_errors = Counter(
            "controller_runtime_reconcile_errors_total",
            "Total number of reconciliation errors per controller",
            ["controller"],
            registry=r,
        )
        self.terminal_reconcile_errors = Counter(
            "controller_runtime_terminal_reconcile_errors_total",
            "Total number of terminal reconciliation errors per controller",
            ["controller"],
            registry=r,
        )
        self.reconcile_time = Histogram(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            ["controller"],
            buckets=RECONCILE_TIME_BUCKETS,
            registry=r,
        )
        self.max_concurrent_reconciles = Gauge(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller",
            ["controller"],
            registry=r,
        )
        self.active_workers = Gauge(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            ["controller"],
            registry=r,
        )

    def _define_workqueue_metrics(self) -> None:
        r = self.registry
        labels = ["name", "controller"]
        self.depth = Gauge("workqueue_depth", "Current depth of workqueue", labels, registry=r)
        self.adds = Counter(
            "workqueue_adds_total", "Total number of adds handled by workqueue", labels, registry=r
        )
        self.queue_duration = Histogram(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            labels,
            buckets=WORKQUEUE_BUCKETS,
            registry=r,
        )
        self.work_duration = Histogram(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes",
            labels,
            buckets=WORKQUEUE_BUCKETS,
            registry=r,
        )
        self.unfinished_work = Gauge(
            "workqueue_unfinished_work_seconds",
            "How many seconds of work has been done that is in progress and hasn't been "
            "observed by work_duration. Large values indicate stuck threads. One can deduce "
            "the number of stuck threads by observing the rate at which this increases.",
            labels,
            registry=r,
        )
        self.longest_running = Gauge(
            "workqueue_longest_running_processor_seconds",
            "How many seconds has the longest running processor for workqueue been running.",
            labels,
            registry=r,
        )
        self.retries = Counter(
            "workqueue_retries_total",
            "Total number of retries handled by workqueue",
            labels,
            registry=r,
        )

    def _define_aimctrl_metrics(self) -> None:
        r = self.registry
        self.discovery_duration = Histogram(
            "aimctrl_discovery_duration_seconds",
            "Time taken by one model image discovery, by mode and outcome",
            ["mode", "outcome"],
            registry=r,
        )
        self.discovery_total = Counter(
            "aimctrl_discovery_total",
            "Model image discoveries finished, by mode and outcome",
            ["mode", "outcome"],
            registry=r,
        )
        self.models = Gauge(
            "aimctrl_models", "Models by kind and status", ["kind", "status"], registry=r
        )
        self.cluster_gpus = Gauge(
            "aimctrl_cluster_gpus",
            "Allocatable AMD GPUs on the cluster's Ready, schedulable nodes, by GPU model",
            ["model"],
            registry=r,
        )
        self._gpu_models: set[str] = set()

    def queue_metrics(self, name: str, *, in_flight: Callable[[], InFlight]) -> QueueMetrics:
        labels = {"name": name, "controller": name}
        self.unfinished_work.labels(**labels).set_function(lambda: in_flight().unfinished_seconds)
        self.longest_running.labels(**labels).set_function(lambda: in_flight().longest_seconds)
        return QueueMetrics(
            depth=self.depth.labels(**labels),
            adds=self.adds.labels(**labels),
            queue_duration=self.queue_duration.labels(**labels),
            work_duration=self.work_duration.labels(**labels),
            retries=self.retries.labels(**labels),
        )

    def controller_metrics(self, name: str, *, max_concurrent_reconciles: int) -> ControllerMetrics:
        self.max_concurrent_reconciles.labels(controller=name).set(max_concurrent_reconciles)
        return ControllerMetrics(
            reconcile_total={
                result: self.reconcile_total.labels(controller=name, result=result.value)
                for result in ReconcileResult
            },
            reconcile_errors=self.reconcile_errors.labels(controller=name),
            terminal_reconcile_errors=self.terminal_reconcile_errors.labels(controller=name),
            reconcile_time=self.reconcile_time.labels(controller=name),
            active_workers=self.active_workers.labels(controller=name),
        )

    def observe_discovery(self, *, mode: str, outcome: str, seconds: float) -> None:
        """Record one finished discovery."""
        self.discovery_duration.labels(mode=mode, outcome=outcome).observe(seconds)
        self.discovery_total.labels(mode=mode, outcome=outcome).inc()

    def set_models(self, kind: str, counts: Mapping[str, int]) -> None:
        """Set ``aimctrl_models{kind}`` to ``counts`` by status; known statuses absent are 0."""
        for status in (*self._model_statuses, *counts.keys() - set(self._model_statuses)):
            self.models.labels(kind=kind, status=status).set(counts.get(status, 0))

    def set_cluster_gpus(self, totals: Mapping[str, int]) -> None:
        """Set ``aimctrl_cluster_gpus{model}`` to ``totals``; a model no longer present is
        removed (its series disappears rather than staying at a stale value)."""
        for model in self._gpu_models - set(totals):
            self.cluster_gpus.remove(model)
        for model, total in totals.items():
            self.cluster_gpus.labels(model=model).set(total)
        self._gpu_models = set(totals)


def serve_metrics(
    registry: CollectorRegistry, bind_address: str, stop_event: threading.Event
) -> int | None:
    """Serve ``/metrics`` on ``bind_address`` until ``stop_event`` is set; return the bound port.

    ``bind_address`` is ``host:port`` as in ``--metrics-bind-address``: ``":8080"`` (all
    interfaces), ``"127.0.0.1:0"`` (an ephemeral port), ``"[::1]:8080"``; ``"0"`` disables the
    server and returns None. Raises OSError if the address cannot be bound.
    """
    if bind_address == "0":
        return None
    host, port = _split_address(bind_address)

    class Handler(_MetricsHandler):
        pass

    Handler.registry = registry
    server_class = _IPv6Server if ":" in host else ThreadingHTTPServer
    server = server_class((host, port), Handler)
    server.daemon_threads = True
    bound_port: int = server.server_address[1]

    def stop_when_asked() -> None:
        stop_event.wait()
        server.shutdown()
        server.server_close()

    threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True).start()
    threading.Thread(target=stop_when_asked, name="metrics-server-stop", daemon=True).start()
    _log.info("serving metrics", address=f"{host}:{bound_port}", path="/metrics")
    return bound_port


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"metrics bind address must be host:port or '0', got {address!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class _MetricsHandler(BaseHTTPRequestHandler):
    registry: CollectorRegistry

    def do_GET(self) -> None:
        if urlsplit(self.path).path != "/metrics":
            self.send_error(404, "only /metrics is served here")
            return
        body = generate_latest(self.registry)
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Scrapes are not worth a log line each."""
