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
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel

from aimctrl.api.v1alpha1.common import ResourceInfo
from aimctrl.kube.client import KubeClient
from aimctrl.kube.errors import KubeError
from aimctrl.kube.resources import CORE_EVENT, SECRET, Resource
from aimctrl.machinery.clock import REAL_CLOCK, Clock
from aimctrl.machinery.informer import InformerFactory, SharedInformer
from aimctrl.machinery.lister import Lister
from aimctrl.machinery.metricsprovider import NOOP_METRICS, MetricsProvider
from aimctrl.machinery.store import IndexFunc, Object, Transform, drop_managed_fields

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


def transform_for(res: Resource) -> Transform:
    """The cache transform of a kind: :func:`drop_secret_data` for Secrets, else
    :func:`~aimctrl.machinery.store.drop_managed_fields`."""
    return drop_secret_data if res == SECRET else drop_managed_fields


def namespaced_getter(lister: Lister, kind: type[M]) -> Callable[[str, str], M | None]:
    """``(namespace, name) -> parsed object or None`` from a cache (parsed fresh: the cache is
    read-only)."""

    def get(namespace: str, name: str) -> M | None:
        raw = lister.get(name, namespace)
        return kind.model_validate(raw) if raw is not None else None

    return get


def cluster_getter(lister: Lister, kind: type[M]) -> Callable[[str], M | None]:
    """``name -> parsed object or None`` from a cluster-scoped kind's cache."""

    def get(name: str) -> M | None:
        raw = lister.get(name)
        return kind.model_validate(raw) if raw is not None else None

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
    workers: int = 2


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class EventRecorder:
    """Writes core/v1 Events about an object (what ``kubectl describe`` shows).

    Callers emit on transitions only (a condition flipping, a Job created), never on every
    reconcile. Failures to record are logged and swallowed: an event is never worth a retry.
    """

    def __init__(
        self, client: KubeClient, *, component: str = "aimctrl", clock: Clock = REAL_CLOCK
    ):
        self._client = client
        self._component = component
        self._clock = clock
        self.sent: list[tuple[str, str, str]] = []  # (object key, type, reason), for tests
        self._lock = threading.Lock()

    def event(
        self, obj: Mapping[str, Any], event_type: EventType, reason: str, message: str
    ) -> None:
        meta = obj["metadata"]
        # Cluster-scoped objects' events go to "default", as client-go's recorder does.
        namespace = meta.get("namespace") or "default"
        now = dt.datetime.fromtimestamp(self._clock.wall(), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": meta["name"],
                "namespace": meta.get("namespace") or "",
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": str(event_type),
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "reportingInstance": self._component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        key = f"{meta.get('namespace') or ''}/{meta['name']}"
        with self._lock:
            self.sent.append((key, str(event_type), reason))
        try:
            self._client.create(CORE_EVENT, body, namespace=namespace)
        except KubeError as e:
            log.warning("event not recorded", reason=reason, error=str(e), object=key)


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
