"""What every reconciler is given: the API client, the shared informers, events, clock, config.

Contract for a controller module in this package (kubebuilder's order, one module per
reconciler):

* ``RBAC: tuple[PolicyRule, ...]`` — every permission its reconcile and setup need; the
  generator merges them into ``config/rbac/role.yaml``;
* a ``<Kind>Reconciler`` with ``reconcile(request) -> Result``, reading only through the listers
  of :class:`Informers` and writing only through :attr:`Context.client`;
* ``setup(ctx) -> list[Controller]``: asks :class:`Informers` for the informers it reads (one per
  kind, shared with every other controller), registers its indexers and event handlers (handlers
  only enqueue), and returns its runnable controllers. The manager starts informers, waits for
  every cache and handler to sync, then starts the controllers.

Status is written with server-side apply on the status subresource, one field manager per
reconciler (:func:`field_manager`), so two reconcilers can own disjoint parts of one status (for
example different condition types on a model) without overwriting each other.

Secrets are cached for existence only, whichever controller asks for their informer first:
:meth:`Informers.informer` gives every informer its kind's transform (:func:`transform_for`), and
the one for Secrets drops ``data``, ``stringData`` and kubectl's last-applied annotation (which
holds the whole object). Every transform drops ``managedFields``.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel

from aimctrl.api.v1alpha1.common import ResourceInfo
from aimctrl.controllers.fleet import Fleet
from aimctrl.kube.client import KubeClient
from aimctrl.kube.errors import KubeError, NotFound
from aimctrl.kube.resources import CORE_EVENT, NODE, SECRET, Resource
from aimctrl.machinery.clock import REAL_CLOCK, Clock
from aimctrl.machinery.informer import InformerFactory, SharedInformer
from aimctrl.machinery.lister import Lister
from aimctrl.machinery.metricsprovider import NOOP_METRICS, MetricsProvider
from aimctrl.machinery.store import IndexFunc, Object, Transform, compact, drop_managed_fields
from aimctrl.resolve.gpus import compact_node

__all__ = [
    "Context",
    "DiscoveryMode",
    "EventRecorder",
    "EventType",
    "Informers",
    "Settings",
    "cluster_getter",
    "drop_secret_data",
    "field_manager",
    "namespaced_getter",
    "resource_of",
    "transform_for",
]

log = structlog.get_logger(__name__)

FIELD_MANAGER_PREFIX = "aimctrl"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"

M = TypeVar("M", bound=BaseModel)

_names = random.Random()  # noqa: S311 - Event names need uniqueness, not secrecy


def field_manager(controller: str) -> str:
    """The server-side-apply field manager of one reconciler, e.g. ``aimctrl-model-discovery``."""
    return f"{FIELD_MANAGER_PREFIX}-{controller}"


def resource_of(info: ResourceInfo | Resource) -> Resource:
    """The kube-layer :class:`Resource` of an AIM kind's ``RESOURCE`` (or a Resource itself)."""
    if isinstance(info, Resource):
        return info
    return Resource(*info.resource)


def drop_secret_data(obj: Object) -> Object:
    """Secrets are cached for existence only: no key material is ever kept in memory."""
    for key in ("data", "stringData"):
        obj.pop(key, None)
    drop_managed_fields(obj)
    annotations = (obj.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict):
        # kubectl apply keeps the whole object, data included, in this annotation.
        annotations.pop(LAST_APPLIED_ANNOTATION, None)
    return obj


def _compact_node(obj: Object) -> Object:
    result: Object = compact(compact_node(obj))
    return result


def transform_for(res: Resource) -> Transform:
    """The cache transform of a kind: :func:`drop_secret_data` for Secrets,
    :func:`~aimctrl.resolve.gpus.compact_node` for Nodes (labels, allocatable, Ready,
    unschedulable: a few hundred bytes a node), else :func:`~aimctrl.machinery.store.compact`
    (managedFields dropped, keys and short strings shared between cached objects)."""
    if res == SECRET:
        return drop_secret_data
    if res == NODE:
        return _compact_node
    return compact


def namespaced_getter(lister: Lister, kind: type[M]) -> Callable[[str, str], M | None]:
    """``(namespace, name) -> parsed object or None`` from a cache; the parsed object is shared
    (decoded once per version, see :meth:`~aimctrl.machinery.lister.Lister.decode`) and
    read-only."""

    def get(namespace: str, name: str) -> M | None:
        raw = lister.get(name, namespace)
        return lister.decode(raw, kind.model_validate) if raw is not None else None

    return get


def cluster_getter(lister: Lister, kind: type[M]) -> Callable[[str], M | None]:
    """``name -> parsed object or None`` from a cluster-scoped kind's cache."""

    def get(name: str) -> M | None:
        raw = lister.get(name)
        return lister.decode(raw, kind.model_validate) if raw is not None else None

    return get


class DiscoveryMode(StrEnum):
    JOB = "job"
    INLINE = "inline"


@dataclass(frozen=True)
class Settings:
    """Manager-wide configuration the reconcilers read (flags of ``aimctrl run``)."""

    operator_namespace: str = "kaiwo-system"
    discovery_mode: DiscoveryMode = DiscoveryMode.JOB
    discovery_image: str = "aimctrl:dev"
    #: Registries reached over plain HTTP (the dev cluster's local registries).
    insecure_registries: tuple[str, ...] = ()
    #: Bound on one discovery Job's run time, and how long its pod is kept for ``kubectl logs``.
    discovery_active_deadline_seconds: int = 300
    discovery_ttl_seconds_after_finished: int = 3600
    workers: int = 4


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True)
class _Event:
    """One event as asked for (what :meth:`EventRecorder.event` captured from the object)."""

    namespace: str
    involved: dict[str, Any]
    event_type: str
    reason: str
    message: str
    timestamp: str

    def key(self) -> tuple[str, ...]:
        """What makes two events "the same" (client-go's aggregation key, no resourceVersion)."""
        o = self.involved
        return (
            self.namespace,
            str(o.get("apiVersion")),
            str(o.get("kind")),
            str(o.get("name")),
            str(o.get("uid")),
            self.event_type,
            self.reason,
            self.message,
        )


@dataclass
class _Seen:
    """An Event object already written, that an identical event increments."""

    name: str
    count: int
    last: float


class EventRecorder:
    """Writes core/v1 Events about an object (what ``kubectl describe`` shows).

    Callers emit on transitions only (a condition flipping, a Job created), never on every
    reconcile. Guarantees:

    * :meth:`event` never blocks on I/O: in the default (background) mode it appends to a
      bounded queue (``queue_size``) drained by one sender thread, started on demand and exiting
      after ``linger`` seconds of real time without work; when the queue is full the event is
      dropped and counted in :attr:`dropped` (an event is never worth stalling a worker);
      ``background=False`` writes in the caller instead (tests that assert the order of writes);
    * identical events (same involved object, type, reason and message) within
      ``aggregate_window`` seconds of the previous one are aggregated as client-go does: the
      existing Event's ``count`` is incremented and its ``lastTimestamp`` moved (a PATCH), no
      new object is created; if that Event is gone (expired), a new one is created. At most
      ``MAX_AGGREGATED`` Event names are remembered (least recently used dropped first);
    * failures to record are logged and swallowed: an event is never worth a retry;
    * :attr:`sent` lists the last ``SENT_KEPT`` events asked for (object key, type, reason), in
      order, at the time they were asked for: bounded, so it is no leak in a long-lived manager;
    * :meth:`flush` waits until every queued event has been written (tests, shutdown).
    """

    SENT_KEPT = 1000
    MAX_AGGREGATED = 4096

    def __init__(
        self,
        client: KubeClient,
        *,
        component: str = "aimctrl",
        clock: Clock = REAL_CLOCK,
        background: bool = True,
        queue_size: int = 4096,
        aggregate_window: float = 600.0,
        linger: float = 5.0,
    ):
        self._client = client
        self._component = component
        self._clock = clock
        self._background = background
        self._queue_size = queue_size
        self._window = aggregate_window
        self._linger = linger
        self._cond = threading.Condition()
        self._sent: deque[tuple[str, str, str]] = deque(maxlen=self.SENT_KEPT)
        self._pending: deque[_Event] = deque()
        self._busy = False
        self._thread: threading.Thread | None = None
        self._deliver_lock = threading.Lock()
        self._seen: OrderedDict[tuple[str, ...], _Seen] = OrderedDict()
        #: Events dropped because the queue was full.
        self.dropped = 0

    @property
    def sent(self) -> list[tuple[str, str, str]]:
        """The last events asked for: ``(namespace/name, type, reason)``, oldest first."""
        with self._cond:
            return list(self._sent)

    def event(
        self, obj: Mapping[str, Any], event_type: EventType, reason: str, message: str
    ) -> None:
        meta = obj["metadata"]
        now = dt.datetime.fromtimestamp(self._clock.wall(), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        item = _Event(
            # Cluster-scoped objects' events go to "default", as client-go's recorder does.
            namespace=meta.get("namespace") or "default",
            involved={
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": meta["name"],
                "namespace": meta.get("namespace") or "",
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            event_type=str(event_type),
            reason=reason,
            message=message[:1024],
            timestamp=now,
        )
        key = f"{meta.get('namespace') or ''}/{meta['name']}"
        with self._cond:
            self._sent.append((key, str(event_type), reason))
            if self._background:
                self._enqueue(item)
                return
        self._deliver(item)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait (real time) until every queued event is written; False if ``timeout`` passed."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    # ------------------------------------------------------------------ sending
    def _enqueue(self, item: _Event) -> None:
        """Queue ``item`` for the sender (``self._cond`` held)."""
        if len(self._pending) >= self._queue_size:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("event queue full; events dropped", dropped=self.dropped)
            return
        self._pending.append(item)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="event-recorder", daemon=True)
            self._thread.start()
        self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    # The linger is real time: it bounds an idle thread, it is not behaviour.
                    if not self._cond.wait(self._linger) and not self._pending:
                        self._thread = None
                        return
                item = self._pending.popleft()
                self._busy = True
            try:
                self._deliver(item)
            except Exception as e:  # noqa: BLE001 - the sender must outlive any one event
                log.warning("event not recorded", reason=item.reason, error=str(e))
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _deliver(self, item: _Event) -> None:
        key = item.key()
        with self._deliver_lock:
            now = self._clock.now()
            seen = self._seen.get(key)
            if (
                seen is not None
                and now - seen.last <= self._window
                and self._increment(item, seen, now)
            ):
                return
            name = self._create(item)
            if name is not None:
                self._seen[key] = _Seen(name=name, count=1, last=now)
                self._seen.move_to_end(key)
                while len(self._seen) > self.MAX_AGGREGATED:
                    self._seen.popitem(last=False)

    def _increment(self, item: _Event, seen: _Seen, now: float) -> bool:
        """PATCH the existing Event's count; False if it is gone (then a new one is made)."""
        try:
            self._client.patch(
                CORE_EVENT,
                seen.name,
                {"count": seen.count + 1, "lastTimestamp": item.timestamp},
                namespace=item.namespace,
            )
        except NotFound:
            return False
        except KubeError as e:
            log.warning("event not recorded", reason=item.reason, error=str(e))
            return True
        seen.count += 1
        seen.last = now
        self._seen.move_to_end(item.key())
        return True

    def _create(self, item: _Event) -> str | None:
        name = f"{item.involved['name']}.{_names.getrandbits(64):016x}"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": item.namespace},
            "involvedObject": item.involved,
            "reason": item.reason,
            "message": item.message,
            "type": item.event_type,
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "reportingInstance": self._component,
            "firstTimestamp": item.timestamp,
            "lastTimestamp": item.timestamp,
            "count": 1,
        }
        try:
            self._client.create(CORE_EVENT, body, namespace=item.namespace)
        except KubeError as e:
            key = f"{item.involved['namespace']}/{item.involved['name']}"
            log.warning("event not recorded", reason=item.reason, error=str(e), object=key)
            return None
        return name


class Informers:
    """The shared informers, one per kind (and namespace and label selector), created on first
    request with the kind's :func:`transform_for`."""

    def __init__(self, client: KubeClient, *, factory: InformerFactory | None = None):
        self._client = client
        self.factory = factory or InformerFactory()

    def informer(
        self,
        kind: ResourceInfo | Resource,
        *,
        indexers: Mapping[str, IndexFunc] | None = None,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> SharedInformer:
        res = resource_of(kind)
        key = (res, namespace, label_selector)
        return self.factory.informer_for(
            key,
            lambda: self._client.list_watcher(
                res, namespace=namespace, label_selector=label_selector
            ),
            transform=transform_for(res),
            indexers=indexers,
        )

    def lister(self, kind: ResourceInfo | Resource, **kw: Any) -> Lister:
        return self.informer(kind, **kw).lister()


@dataclass
class Context:
    """Everything a controller's ``setup`` and reconciler need."""

    client: KubeClient
    informers: Informers
    recorder: EventRecorder
    settings: Settings = field(default_factory=Settings)
    clock: Clock = REAL_CLOCK
    metrics: MetricsProvider = NOOP_METRICS
    #: The Prometheus implementation when present (discovery and model gauges use it).
    prometheus: Any = None
    #: Set when the manager shuts down: long outbound calls (registry retries) stop early.
    stop: threading.Event = field(default_factory=threading.Event)
    #: Hooks for tests and the manager: called with (controller name, request) after reconcile.
    observers: list[Callable[[str, Object], None]] = field(default_factory=list)
    _fleet: Fleet | None = field(default=None, init=False, repr=False)

    def fleet(self) -> Fleet:
        """The GPU fleet (one per manager, on the shared Node informer), made on first use."""
        if self._fleet is None:
            gauge = self.prometheus.set_cluster_gpus if self.prometheus is not None else None
            self._fleet = Fleet(self.informers.informer(NODE), set_gauge=gauge)
        return self._fleet
