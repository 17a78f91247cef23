"""A recording fake of :class:`~aimctrl.kube.client.KubeClient` for reconciler unit tests.

sample-controller's fixture, in Python: a test seeds the informer caches with dicts, calls
``reconcile()`` once, and asserts the exact list of API actions the reconciler sent.

Guarantees:

* every verb call is appended to :attr:`FakeKubeClient.actions` as an :class:`Action`, in call
  order, before any injected error is raised (a failed write is still an attempted write);
* nothing is sent anywhere: reads answer from :attr:`FakeKubeClient.objects`, which writes update
  (apply merges ``metadata``/``spec``/``status`` shallowly — enough to return a plausible object,
  not a model of server-side apply);
* :meth:`FakeKubeClient.fail` injects a :class:`~aimctrl.kube.errors.KubeError` for one verb on
  one object (or every object), raised on each matching call until cleared;
* :meth:`FakeKubeClient.list_watcher` returns a never-started scripted lister-watcher, so a real
  :class:`~aimctrl.controllers.context.Informers` can be built on this client and its caches
  seeded directly with :func:`seed`.
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aimctrl.api.v1alpha1.common import ResourceInfo
from aimctrl.controllers.context import Context, EventRecorder, Informers, Settings, resource_of
from aimctrl.kube.client import FIELD_MANAGER, KubeClient
from aimctrl.kube.errors import KubeError, NotFound
from aimctrl.kube.resources import NODE, Resource
from aimctrl.machinery.clock import Clock, FakeClock
from aimctrl.machinery.controller import Controller
from aimctrl.machinery.reconcile import Request
from aimctrl.machinery.store import Object
from aimctrl.testing.fakes import ScriptedListerWatcher

__all__ = ["Action", "FakeKubeClient", "deliver", "fake_context", "queued", "seed"]

_READS = frozenset({"get", "list"})


@dataclass(frozen=True)
class Action:
    """One API call: verb, resource plural, namespace, name, and what was sent."""

    verb: str
    resource: str
    namespace: str
    name: str
    body: Object | None = None
    subresource: str = ""
    field_manager: str = ""
    force: bool | None = None

    @property
    def is_write(self) -> bool:
        return self.verb not in _READS


def _key(resource: Resource, namespace: str, name: str) -> tuple[str, str, str]:
    return (resource.plural, namespace if resource.namespaced else "", name)


class FakeKubeClient(KubeClient):
    """Records calls; answers from an in-memory object map. Thread-safe."""

    def __init__(self) -> None:  # no super().__init__: there is no API server to configure
        self.actions: list[Action] = []
        self.objects: dict[tuple[str, str, str], Object] = {}
        self._errors: dict[tuple[str, str, str], KubeError] = {}
        self._rv = itertools.count(1000)
        self._uid = itertools.count(1)
        self._lock = threading.Lock()

    # -- test API -----------------------------------------------------------------------------

    def fail(
        self,
        verb: str,
        resource: Resource | ResourceInfo,
        *,
        error: KubeError,
        name: str = "*",
    ) -> None:
        """Raise ``error`` on every ``verb`` call for ``name`` (``"*"``: any name)."""
        self._errors[(verb, resource_of(resource).plural, name)] = error

    def clear_failures(self) -> None:
        self._errors.clear()

    def writes(self) -> list[Action]:
        """The recorded actions that would change something (everything but get/list)."""
        with self._lock:
            return [a for a in self.actions if a.is_write]

    def put(self, resource: Resource | ResourceInfo, obj: Object) -> None:
        """Store ``obj`` as if it existed on the server (for ``get``)."""
        res = resource_of(resource)
        meta = obj["metadata"]
        self.objects[_key(res, meta.get("namespace") or "", meta["name"])] = copy.deepcopy(obj)

    # -- recording ----------------------------------------------------------------------------

    def _record(self, action: Action) -> None:
        with self._lock:
            self.actions.append(action)
        for name in (action.name, "*"):
            error = self._errors.get((action.verb, action.resource, name))
            if error is not None:
                raise error

    def _stored(self, resource: Resource, namespace: str, name: str, body: Object) -> Object:
        with self._lock:
            key = _key(resource, namespace, name)
            current = copy.deepcopy(self.objects.get(key) or {})
            merged = {**current, **copy.deepcopy(body)}
            meta = {**(current.get("metadata") or {}), **(body.get("metadata") or {})}
            meta.setdefault("uid", f"uid-{next(self._uid)}")
            meta["resourceVersion"] = str(next(self._rv))
            merged["metadata"] = meta
            merged.setdefault("apiVersion", resource.api_version)
            merged.setdefault("kind", resource.kind)
            self.objects[key] = merged
            return copy.deepcopy(merged)

    # -- verbs --------------------------------------------------------------------------------

    def get(self, resource: Resource, name: str, *, namespace: str = "") -> Object:
        self._record(Action("get", resource.plural, namespace, name))
        with self._lock:
            obj = self.objects.get(_key(resource, namespace, name))
        if obj is None:
            raise NotFound(f'{resource.plural} "{name}" not found', status=404, reason="NotFound")
        return copy.deepcopy(obj)

    def list(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 500,
    ) -> Object:
        self._record(Action("list", resource.plural, namespace or "", ""))
        with self._lock:
            items = [
                copy.deepcopy(o)
                for (plural, ns, _), o in self.objects.items()
                if plural == resource.plural and (namespace is None or ns == namespace)
            ]
        return {"kind": f"{resource.kind}List", "metadata": {}, "items": items}

    def create(
        self,
        resource: Resource,
        body: Object,
        *,
        namespace: str = "",
        field_manager: str = FIELD_MANAGER,
    ) -> Object:
        namespace = namespace or (body.get("metadata") or {}).get("namespace") or ""
        name = (body.get("metadata") or {}).get("name") or ""
        self._record(
            Action(
                "create", resource.plural, namespace, name, copy.deepcopy(body), "", field_manager
            )
        )
        return self._stored(resource, namespace, name, body)

    def update(
        self,
        resource: Resource,
        body: Object,
        *,
        subresource: str = "",
        field_manager: str = FIELD_MANAGER,
    ) -> Object:
        meta = body.get("metadata") or {}
        namespace, name = meta.get("namespace") or "", meta["name"]
        self._record(
            Action(
                "update",
                resource.plural,
                namespace,
                name,
                copy.deepcopy(body),
                subresource,
                field_manager,
            )
        )
        return self._stored(resource, namespace, name, body)

    def delete(
        self,
        resource: Resource,
        name: str,
        *,
        namespace: str = "",
        propagation_policy: str = "Background",
        preconditions: Any = None,
    ) -> Object:
        body = {"preconditions": dict(preconditions)} if preconditions else None
        self._record(Action("delete", resource.plural, namespace, name, body))
        with self._lock:
            self.objects.pop(_key(resource, namespace, name), None)
        return {"kind": "Status", "status": "Success"}

    def patch(
        self,
        resource: Resource,
        name: str,
        patch: Object,
        *,
        namespace: str = "",
        subresource: str = "",
        field_manager: str = FIELD_MANAGER,
    ) -> Object:
        self._record(
            Action(
                "patch",
                resource.plural,
                namespace,
                name,
                copy.deepcopy(patch),
                subresource,
                field_manager,
            )
        )
        return self._stored(resource, namespace, name, patch)

    def apply(
        self,
        resource: Resource,
        body: Object,
        *,
        field_manager: str = FIELD_MANAGER,
        force: bool = True,
        subresource: str = "",
    ) -> Object:
        meta = body.get("metadata") or {}
        namespace, name = meta.get("namespace") or "", meta["name"]
        verb = "apply_status" if subresource == "status" else "apply"
        self._record(
            Action(
                verb,
                resource.plural,
                namespace,
                name,
                copy.deepcopy(body),
                subresource,
                field_manager,
                force,
            )
        )
        return self._stored(resource, namespace, name, body)

    def list_watcher(
        self,
        resource: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
        *,
        field_selector: str | None = None,
    ) -> Any:
        return ScriptedListerWatcher()

    def close(self) -> None:
        pass


def seed(ctx: Context, kind: ResourceInfo | Resource, *objs: Object) -> None:
    """Put ``objs`` into the shared informer cache of ``kind`` (as a completed list would)."""
    indexer = ctx.informers.informer(kind).indexer
    for obj in objs:
        _, cached = indexer.upsert(copy.deepcopy(obj))
        if kind == NODE:
            ctx.fleet().on_add(cached, False)


def deliver(
    ctx: Context,
    kind: ResourceInfo | Resource,
    obj: Object,
    *,
    old: Object | None = None,
    deleted: bool = False,
) -> None:
    """Hand ``obj`` to every handler registered on ``kind``'s informer, as its dispatch would:
    an add, an update (when ``old`` is given) or a delete. Lets a test check what ``setup``
    wired up by looking at the controller's queue afterwards."""
    informer = ctx.informers.informer(kind)
    # The registrations are private to the informer; this fake stands in for its dispatcher.
    for registration in list(informer._registrations):
        if deleted:
            registration.handler.on_delete(obj)
        elif old is not None:
            registration.handler.on_update(old, obj)
        else:
            registration.handler.on_add(obj, False)


def queued(controller: Controller) -> set[Request]:
    """Drain ``controller``'s queue; return the keys that were in it."""
    keys: set[Request] = set()
    while controller.queue.len():
        key, _ = controller.queue.get()
        assert key is not None  # the queue is not shutting down
        keys.add(key)
        controller.queue.done(key)
    return keys


def fake_context(
    client: FakeKubeClient | None = None,
    *,
    settings: Settings | None = None,
    clock: Clock | None = None,
    kinds: Iterable[ResourceInfo | Resource] = (),
) -> Context:
    """A :class:`Context` on a :class:`FakeKubeClient` (``ctx.client``), with a fake clock.

    Events go through the recorder to the fake client as ``create`` actions on ``events`` and are
    also listed in ``ctx.recorder.sent``. ``kinds``: informers to create up front.
    """
    client = client or FakeKubeClient()
    clock = clock or FakeClock()
    ctx = Context(
        client=client,
        informers=Informers(client),
        recorder=EventRecorder(client, clock=clock),
        settings=settings or Settings(),
        clock=clock,
    )
    for kind in kinds:
        ctx.informers.informer(kind)
    return ctx
