"""The manager: one set of informers, every reconciler, metrics, probes and leader election.

Start-up order (controller-runtime's): build the client and the shared informers; let every
controller module's ``setup(ctx)`` ask for the informers it reads and register its handlers;
start the informers (so ``/readyz`` can report cache sync even on a standby replica); when leader
election is on, wait for the Lease; then wait until every cache and every handler has synced and
start the controllers' workers.

Guarantees: losing the Lease ends the process at once with exit code 1 (another replica is
already reconciling, and nothing may be written after that); SIGTERM/SIGINT stop the workers,
drain in-flight reconciles within the shutdown budget (30 s) and release the Lease; an exception
in one reconcile never stops the manager (the runner catches, logs and requeues it).
"""

from __future__ import annotations

import gc
import importlib
import os
import pkgutil
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType

import structlog

from aimctrl.controllers.context import Context, EventRecorder, Informers, Settings
from aimctrl.kube.client import KubeClient
from aimctrl.kube.lease import KubeLeaseLock
from aimctrl.machinery.controller import Controller
from aimctrl.machinery.leaderelection import LeaderElector, default_identity
from aimctrl.metrics import PrometheusMetrics, serve_metrics
from aimctrl.probes import ProbeServer

__all__ = ["Manager", "ManagerOptions", "controller_modules"]

log = structlog.get_logger(__name__)

LEADER_ELECTION_ID = "aimctrl-leader.aim.silogen.ai"


@dataclass(frozen=True)
class ManagerOptions:
    """The flags of ``aimctrl run`` (kubebuilder's spelling)."""

    kubeconfig: str | None = None
    metrics_bind_address: str = ":8080"
    health_probe_bind_address: str = ":8081"
    leader_elect: bool = False
    leader_election_namespace: str | None = None
    leader_election_id: str = LEADER_ELECTION_ID
    #: client-go's defaults (kube-controller-manager's ``--leader-elect-*`` flags).
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    impersonate_user: str | None = None
    impersonate_groups: tuple[str, ...] = ()
    shutdown_timeout: float = 30.0
    cache_sync_timeout: float = 120.0
    settings: Settings = field(default_factory=Settings)
    #: Restrict to these controller modules (short names, e.g. "model"); empty: all of them.
    only: tuple[str, ...] = ()
    #: Process-wide garbage-collector policy (``aimctrl run`` only, never in-process tests):
    #: the cyclic GC is off while the caches fill, then what they hold is frozen out of it.
    tune_gc: bool = False


def controller_modules(only: Sequence[str] = ()) -> list[ModuleType]:
    """Every module of :mod:`aimctrl.controllers` that defines ``setup``, in name order."""
    import aimctrl.controllers as pkg

    found = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if only and info.name not in only:
            continue
        module = importlib.import_module(f"{pkg.__name__}.{info.name}")
        if callable(getattr(module, "setup", None)):
            found.append(module)
    return found


class Manager:
    def __init__(self, options: ManagerOptions, *, client: KubeClient | None = None) -> None:
        self.options = options
        self.client = client or _client(options)
        self.prometheus = PrometheusMetrics()
        self.informers = Informers(self.client)
        self.stop = threading.Event()
        self.ctx = Context(
            stop=self.stop,
            client=self.client,
            informers=self.informers,
            recorder=EventRecorder(self.client),
            settings=options.settings,
            metrics=self.prometheus,
            prometheus=self.prometheus,
        )
        self.controllers: list[Controller] = []
        for module in controller_modules(options.only):
            self.controllers.extend(module.setup(self.ctx))
        self._leading = threading.Event()
        self._lost = threading.Event()
        self.probes = ProbeServer(options.health_probe_bind_address)
        self.probes.add_readyz_check("informers-synced", self._caches_synced)
        self.elector: LeaderElector | None = None
        self.metrics_port: int | None = None
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ parts
    def _caches_synced(self) -> bool:
        return all(i.has_synced() for i in self.informers.factory.informers().values())

    def start(self) -> None:
        """Start everything in background threads (for ``run`` and for in-process tests)."""
        self.metrics_port = serve_metrics(
            self.prometheus.registry, self.options.metrics_bind_address, self.stop
        )
        self.probes.start()
        if self.options.tune_gc:
            self._start_gc_settling()
        self.informers.factory.start(self.stop)
        if self.options.leader_elect:
            self._start_election()
        else:
            self._leading.set()
        t = threading.Thread(target=self._run_controllers, name="controllers", daemon=True)
        t.start()
        self._threads.append(t)
        log.info(
            "manager started",
            controllers=[c.name for c in self.controllers],
            metrics_port=self.metrics_port,
            probe_port=self.probes.port,
            leader_elect=self.options.leader_elect,
        )

    def _start_gc_settling(self) -> None:
        """Keep the cyclic GC off during the initial lists, then freeze what they built.

        The initial lists allocate one dict per object and field, which the cyclic GC would walk
        again and again while the caches fill (they hold no garbage cycles); after the sync one
        full collection runs and the survivors move to the permanent generation
        (:func:`gc.freeze`), so later collections never walk the cache built at start. The GC is
        switched on again on every path: sync, timeout or stop.
        """
        gc.disable()

        def settle() -> None:
            try:
                self.informers.factory.wait_for_cache_sync(
                    self.stop, timeout=self.options.cache_sync_timeout
                )
            finally:
                gc.collect()
                gc.freeze()
                gc.enable()
                log.debug("garbage collector settled", frozen=gc.get_freeze_count())

        t = threading.Thread(target=settle, name="gc-settle", daemon=True)
        t.start()
        self._threads.append(t)

    def _start_election(self) -> None:
        namespace = (
            self.options.leader_election_namespace or self.options.settings.operator_namespace
        )
        lock = KubeLeaseLock(
            self.client.api_client, namespace=namespace, name=self.options.leader_election_id
        )
        self.elector = LeaderElector(
            lock,
            default_identity(),
            on_started_leading=lambda _stop: self._leading.set(),
            on_stopped_leading=self._on_stopped_leading,
            lease_duration=self.options.lease_duration,
            renew_deadline=self.options.renew_deadline,
            retry_period=self.options.retry_period,
        )
        self.probes.add_healthz_check("leader-election", self.elector.healthy)
        t = threading.Thread(
            target=self.elector.run, args=(self.stop,), name="leader-election", daemon=True
        )
        t.start()
        self._threads.append(t)

    def _on_stopped_leading(self) -> None:
        if self.stop.is_set():
            return  # a clean shutdown released the lease
        log.error("leader election lost; exiting")
        self._lost.set()
        self.stop.set()

    def _run_controllers(self) -> None:
        while not self._leading.wait(0.2):
            if self.stop.is_set():
                return
        if self.elector is not None:
            log.info("became leader", identity=self.elector.identity)
        # Informers asked for by setup() after start (none today) are started here too.
        self.informers.factory.start(self.stop)
        if not self.informers.factory.wait_for_cache_sync(
            self.stop, timeout=self.options.cache_sync_timeout
        ):
            if not self.stop.is_set():
                log.error("caches did not sync", timeout=self.options.cache_sync_timeout)
                self.stop.set()
            return
        for controller in self.controllers:
            controller.start(self.stop)

    def shutdown(self) -> None:
        """Stop workers (draining in-flight reconciles), informers, servers; release the Lease."""
        self.stop.set()
        for controller in self.controllers:
            controller.shut_down()
        self.probes.shut_down()
        for t in self._threads:
            t.join(timeout=self.options.shutdown_timeout)
        # Events the workers asked for before they stopped are still worth writing.
        self.ctx.recorder.flush(timeout=5.0)
        self.client.close()

    # ------------------------------------------------------------------ process
    def run(self) -> int:
        """Run until SIGTERM/SIGINT (exit 0) or loss of the Lease (exit 1)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop.set())
        self.start()
        self.stop.wait()
        if self._lost.is_set():
            # Another replica leads now: stop without draining, like controller-runtime.
            sys.stdout.flush()
            os._exit(1)
        log.info("shutting down")
        self.shutdown()
        return 0


def _client(options: ManagerOptions) -> KubeClient:
    kw = {
        "impersonate_user": options.impersonate_user,
        "impersonate_groups": options.impersonate_groups,
    }
    if options.kubeconfig or os.environ.get("KUBECONFIG"):
        return KubeClient.from_kubeconfig(options.kubeconfig, **kw)  # type: ignore[arg-type]
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return KubeClient.in_cluster(**kw)  # type: ignore[arg-type]
    return KubeClient.from_kubeconfig(None, **kw)  # type: ignore[arg-type]
