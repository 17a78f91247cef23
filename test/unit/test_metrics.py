"""Prometheus metrics: controller-runtime's names and labels, pre-created series, /metrics."""

from __future__ import annotations

import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from aimctrl.machinery.clock import FakeClock
from aimctrl.machinery.controller import Controller
from aimctrl.machinery.queue import Queue
from aimctrl.machinery.reconcile import Request, Result, TerminalError
from aimctrl.metrics import (
    RECONCILE_TIME_BUCKETS,
    WORKQUEUE_BUCKETS,
    PrometheusMetrics,
    serve_metrics,
)

pytestmark = pytest.mark.timeout(30)

CONTROLLER_SERIES = [
    'controller_runtime_reconcile_total{controller="models",result="success"}',
    'controller_runtime_reconcile_total{controller="models",result="error"}',
    'controller_runtime_reconcile_total{controller="models",result="requeue"}',
    'controller_runtime_reconcile_total{controller="models",result="requeue_after"}',
    'controller_runtime_reconcile_errors_total{controller="models"}',
    'controller_runtime_terminal_reconcile_errors_total{controller="models"}',
    'controller_runtime_reconcile_time_seconds_count{controller="models"}',
    'controller_runtime_active_workers{controller="models"}',
    'workqueue_depth{controller="models",name="models"}',
    'workqueue_adds_total{controller="models",name="models"}',
    'workqueue_queue_duration_seconds_count{controller="models",name="models"}',
    'workqueue_work_duration_seconds_count{controller="models",name="models"}',
    'workqueue_unfinished_work_seconds{controller="models",name="models"}',
    'workqueue_longest_running_processor_seconds{controller="models",name="models"}',
    'workqueue_retries_total{controller="models",name="models"}',
]


def samples(registry: CollectorRegistry) -> dict[str, float]:
    """Exposition parsed into {'name{label="v",...}': value}, labels sorted by name."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


class Outcomes:
    """One outcome per key name: ok, boom (error), terminal, later (requeue_after), else requeue."""

    def reconcile(self, request: Request) -> Result:
        match request.name:
            case "ok":
                return Result()
            case "boom":
                raise RuntimeError("boom")
            case "terminal":
                raise TerminalError("bad spec")
            case "later":
                return Result(requeue_after=600.0)
            case _:
                return Result(requeue=True)


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def test_every_controller_series_exists_at_zero_once_built() -> None:
    metrics = PrometheusMetrics()
    ctrl = Controller("models", Outcomes(), workers=3, metrics=metrics, clock=FakeClock())
    got = samples(metrics.registry)
    for series in CONTROLLER_SERIES:
        assert got[series] == 0.0, series
    assert got['controller_runtime_max_concurrent_reconciles{controller="models"}'] == 3.0
    ctrl.queue.shut_down()


def test_no_created_series_and_controller_runtime_buckets() -> None:
    metrics = PrometheusMetrics()
    Queue(name="models", metrics=metrics)
    text = generate_latest(metrics.registry).decode()
    assert "_created" not in text
    assert len(RECONCILE_TIME_BUCKETS) == 40
    assert WORKQUEUE_BUCKETS == (
        1e-8,
        1e-7,
        1e-6,
        1e-5,
        1e-4,
        1e-3,
        0.01,
        0.1,
        1.0,
        10.0,
        100.0,
        1e3,
    )
    assert (
        'workqueue_queue_duration_seconds_bucket{controller="models",le="1e-08",name="models"}'
        in (samples(metrics.registry))
    )


class Recorded(Outcomes):
    """Outcomes, plus an event set when the sentinel key ``last`` starts reconciling."""

    def __init__(self) -> None:
        self.last_started = threading.Event()

    def reconcile(self, request: Request) -> Result:
        if request.name == "last":
            self.last_started.set()
            return Result()
        return super().reconcile(request)


def test_reconcile_outcomes_are_counted_by_result(stop: threading.Event) -> None:
    metrics = PrometheusMetrics()
    reconciler = Recorded()
    ctrl = Controller("models", reconciler, metrics=metrics, clock=FakeClock())
    for name in ("ok", "boom", "terminal", "later", "again", "last"):
        ctrl.queue.add(Request("ns", name))
    assert ctrl.start(stop)
    # One worker: once "last" starts, the five before it are fully recorded.
    assert reconciler.last_started.wait(5.0)
    assert ctrl.shut_down()
    got = samples(metrics.registry)
    label = 'controller="models"'
    assert got[f'controller_runtime_reconcile_total{{{label},result="success"}}'] == 2
    assert got[f'controller_runtime_reconcile_total{{{label},result="error"}}'] == 2
    assert got[f'controller_runtime_reconcile_total{{{label},result="requeue_after"}}'] == 1
    assert got[f'controller_runtime_reconcile_total{{{label},result="requeue"}}'] == 1
    assert got[f"controller_runtime_reconcile_errors_total{{{label}}}"] == 2
    assert got[f"controller_runtime_terminal_reconcile_errors_total{{{label}}}"] == 1
    assert got[f"controller_runtime_reconcile_time_seconds_count{{{label}}}"] == 6
    assert got[f"controller_runtime_active_workers{{{label}}}"] == 0
    # boom, later and again each asked for a delayed add (the fake clock never lets them fire)
    assert got[f'workqueue_retries_total{{{label},name="models"}}'] == 3
    assert got[f'workqueue_adds_total{{{label},name="models"}}'] == 6
    assert got[f'workqueue_queue_duration_seconds_count{{{label},name="models"}}'] == 6
    assert got[f'workqueue_work_duration_seconds_count{{{label},name="models"}}'] == 6


def test_in_flight_gauges_are_computed_at_scrape_time() -> None:
    metrics = PrometheusMetrics()
    clock = FakeClock()
    q: Queue[str] = Queue(name="models", clock=clock, metrics=metrics)
    q.add("a")
    q.add("b")
    q.get()
    clock.step(5.0)
    q.get()
    clock.step(1.0)
    got = samples(metrics.registry)
    labels = '{controller="models",name="models"}'
    assert got[f"workqueue_unfinished_work_seconds{labels}"] == 6.0 + 1.0
    assert got[f"workqueue_longest_running_processor_seconds{labels}"] == 6.0
    assert got[f"workqueue_depth{labels}"] == 0.0
    q.done("a")
    q.done("b")
    assert samples(metrics.registry)[f"workqueue_longest_running_processor_seconds{labels}"] == 0


def test_aimctrl_series_are_pre_created_and_recorded() -> None:
    metrics = PrometheusMetrics()
    got = samples(metrics.registry)
    assert got['aimctrl_discovery_total{mode="job",outcome="success"}'] == 0
    assert got['aimctrl_discovery_duration_seconds_count{mode="inline",outcome="not_found"}'] == 0
    assert got['aimctrl_models{kind="AIMModel",status="Ready"}'] == 0
    metrics.observe_discovery(mode="job", outcome="success", seconds=2.5)
    metrics.set_models("AIMModel", {"Ready": 3, "Failed": 1})
    metrics.set_models("AIMModel", {"Ready": 4})
    got = samples(metrics.registry)
    assert got['aimctrl_discovery_total{mode="job",outcome="success"}'] == 1
    assert got['aimctrl_discovery_duration_seconds_sum{mode="job",outcome="success"}'] == 2.5
    assert got['aimctrl_models{kind="AIMModel",status="Ready"}'] == 4
    assert got['aimctrl_models{kind="AIMModel",status="Failed"}'] == 0


def test_two_providers_do_not_share_a_registry() -> None:
    first, second = PrometheusMetrics(), PrometheusMetrics()
    Queue(name="models", metrics=first)
    assert "workqueue_depth" in generate_latest(first.registry).decode()
    assert 'name="models"' not in generate_latest(second.registry).decode()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_exposition_passes_promtool_check_metrics() -> None:
    metrics = PrometheusMetrics()
    ctrl = Controller("models", Outcomes(), metrics=metrics, clock=FakeClock())
    ctrl.queue.shut_down()
    metrics.observe_discovery(mode="inline", outcome="error", seconds=0.1)
    proc = subprocess.run(
        ["promtool", "check", "metrics"],
        input=generate_latest(metrics.registry),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def test_serve_metrics_serves_the_registry_on_an_ephemeral_port() -> None:
    metrics = PrometheusMetrics()
    Queue(name="models", metrics=metrics)
    stop = threading.Event()
    port = serve_metrics(metrics.registry, "127.0.0.1:0", stop)
    try:
        assert port is not None
        assert port > 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert 'workqueue_depth{controller="models",name="models"} 0.0' in body
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=5)
        assert err.value.code == 404
    finally:
        stop.set()


def test_serve_metrics_is_disabled_by_bind_address_zero() -> None:
    assert serve_metrics(CollectorRegistry(), "0", threading.Event()) is None


def test_serve_metrics_rejects_an_address_without_a_port() -> None:
    with pytest.raises(ValueError, match="host:port"):
        serve_metrics(CollectorRegistry(), "localhost", threading.Event())
