"""Event handlers that turn informer notifications into :class:`Request` keys on a queue.

Guarantees: handlers only compute keys and call ``queue.add`` (no I/O, no blocking); tombstones
are unwrapped before mapping; an update enqueues the keys of both the old and the new object,
each at most once per event; predicates (all must pass) are checked before mapping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from aimctrl.machinery.predicate import Predicate
from aimctrl.machinery.reconcile import Request
from aimctrl.machinery.store import DeletedFinalStateUnknown, Object, unwrap

__all__ = [
    "EnqueueRequestForObject",
    "EnqueueRequestForOwner",
    "EnqueueRequestsFromMapFunc",
    "Queue",
    "api_group",
    "debounced",
    "request_for",
]


class Queue(Protocol):
    def add(self, item: Request, /) -> None: ...


class _DelayingQueue(Protocol):
    def add_after(self, key: Request, seconds: float, *, retry: bool = True) -> None: ...


class _Debounced:
    def __init__(self, queue: _DelayingQueue, seconds: float) -> None:
        self._queue = queue
        self._seconds = seconds

    def add(self, item: Request, /) -> None:
        self._queue.add_after(item, self._seconds, retry=False)


def debounced(queue: _DelayingQueue, seconds: float) -> Queue:
    """A queue for a handler whose events come in bursts: each add becomes "add after
    ``seconds``", and the delaying queue keeps one waiting entry per key, so a burst becomes one
    reconcile ``seconds`` after its first event. An immediate add of the key (its own events)
    still goes first. Not counted as a retry."""
    return _Debounced(queue, seconds)


def request_for(obj: Object) -> Request:
    meta = obj.get("metadata") or {}
    return Request(namespace=meta.get("namespace") or "", name=meta.get("name") or "")


def api_group(api_version: str) -> str:
    """``"apps/v1"`` → ``"apps"``; ``"v1"`` (core) → ``""``."""
    group, sep, _ = api_version.rpartition("/")
    return group if sep else ""


class _MappingHandler:
    def __init__(self, queue: Queue, predicates: Sequence[Predicate]) -> None:
        self._queue = queue
        self._predicates = tuple(predicates)

    def requests(self, obj: Object) -> Iterable[Request]:
        raise NotImplementedError

    def _enqueue(self, *objs: Object) -> None:
        seen: set[Request] = set()
        for obj in objs:
            for req in self.requests(obj):
                if req not in seen:
                    seen.add(req)
                    self._queue.add(req)

    def on_add(self, obj: Object, is_initial_list: bool) -> None:
        if all(p.create(obj) for p in self._predicates):
            self._enqueue(obj)

    def on_update(self, old: Object, new: Object) -> None:
        if all(p.update(old, new) for p in self._predicates):
            self._enqueue(old, new)

    def on_delete(self, obj: Object | DeletedFinalStateUnknown) -> None:
        final = unwrap(obj)
        if all(p.delete(final) for p in self._predicates):
            self._enqueue(final)


class EnqueueRequestForObject(_MappingHandler):
    """Enqueues the object's own key (``For()`` in controller-runtime)."""

    def __init__(self, queue: Queue, *, predicates: Sequence[Predicate] = ()) -> None:
        super().__init__(queue, predicates)

    def requests(self, obj: Object) -> Iterable[Request]:
        return (request_for(obj),)


class EnqueueRequestForOwner(_MappingHandler):
    """Enqueues the owners of type ``owner_api_version``/``owner_kind`` (``Owns()``).

    Owner references are matched by API group and kind, not version. With ``only_controller``
    only the reference marked ``controller: true`` counts. A cluster-scoped owner
    (``owner_namespaced=False``) is enqueued with namespace ``""``; a namespaced owner in the
    object's own namespace.
    """

    def __init__(
        self,
        queue: Queue,
        *,
        owner_api_version: str,
        owner_kind: str,
        owner_namespaced: bool = True,
        only_controller: bool = True,
        predicates: Sequence[Predicate] = (),
    ) -> None:
        super().__init__(queue, predicates)
        self._group = api_group(owner_api_version)
        self._kind = owner_kind
        self._namespaced = owner_namespaced
        self._only_controller = only_controller

    def requests(self, obj: Object) -> Iterable[Request]:
        meta = obj.get("metadata") or {}
        namespace = (meta.get("namespace") or "") if self._namespaced else ""
        out: list[Request] = []
        for ref in meta.get("ownerReferences") or ():
            if ref.get("kind") != self._kind:
                continue
            if api_group(str(ref.get("apiVersion", ""))) != self._group:
                continue
            if self._only_controller and not ref.get("controller"):
                continue
            out.append(Request(namespace=namespace, name=str(ref.get("name", ""))))
        return out


class EnqueueRequestsFromMapFunc(_MappingHandler):
    """Enqueues whatever ``fn(obj)`` returns (``Watches(..., EnqueueRequestsFromMapFunc)``)."""

    def __init__(
        self,
        queue: Queue,
        fn: Callable[[Object], Iterable[Request]],
        *,
        predicates: Sequence[Predicate] = (),
    ) -> None:
        super().__init__(queue, predicates)
        self._fn = fn

    def requests(self, obj: Object) -> Iterable[Request]:
        return self._fn(obj)
