"""Shared informers: one reflector and one cache per kind, fanned out to event handlers.

Guarantees:

* The cache is written by the reflector thread; each write and the notifications it causes are
  recorded under one lock, so every handler sees the changes in the order the cache took them.
* Handlers are called from the informer's single dispatch thread, never with a lock held. They
  must only enqueue (a slow handler delays every other handler of this informer). An exception in a
  handler is logged and that one notification is skipped.
* ``on_add(obj, is_initial_list)`` is called for every object of the first list (with
  ``is_initial_list=True``) and for objects that appear later; ``on_update(old, new)`` for changes,
  relisted objects and resyncs (``old is new`` on a resync); ``on_delete(obj)`` with the final
  object, or a :class:`~aimctrl.machinery.store.DeletedFinalStateUnknown` when the deletion was
  only noticed by a relist.
* :meth:`SharedInformer.has_synced` is true once the cache holds one full list; the registration
  returned by :meth:`SharedInformer.add_event_handler` reports ``has_synced()`` only after that
  handler has also been handed every object of that list. A handler added after the first list
  first receives the current cache as initial adds.
* :class:`InformerFactory` hands out exactly one informer per key, so all controllers share it.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Protocol

import structlog

from aimctrl.machinery.clock import REAL_CLOCK, Clock
from aimctrl.machinery.lister import Lister
from aimctrl.machinery.listwatch import ListerWatcher
from aimctrl.machinery.reflector import PAGE_SIZE, Backoff, Reflector
from aimctrl.machinery.store import (
    DeletedFinalStateUnknown,
    Indexer,
    IndexFunc,
    Object,
    Transform,
    drop_managed_fields,
)

__all__ = [
    "EventHandler",
    "HandlerRegistration",
    "InformerFactory",
    "SharedInformer",
    "wait_for_cache_sync",
]

log = structlog.get_logger(__name__)


class EventHandler(Protocol):
    def on_add(self, obj: Object, is_initial_list: bool) -> None: ...

    def on_update(self, old: Object, new: Object) -> None: ...

    def on_delete(self, obj: Object | DeletedFinalStateUnknown) -> None: ...


@dataclass(frozen=True, slots=True)
class _Add:
    obj: Object
    initial: bool


@dataclass(frozen=True, slots=True)
class _Update:
    old: Object
    new: Object


@dataclass(frozen=True, slots=True)
class _Delete:
    obj: Object | DeletedFinalStateUnknown


@dataclass(frozen=True, slots=True)
class _Synced:
    pass


_Note = _Add | _Update | _Delete | _Synced


class HandlerRegistration:
    """One handler's subscription; ``has_synced()`` once its initial list was delivered."""

    def __init__(self, handler: EventHandler) -> None:
        self.handler = handler
        self._synced = threading.Event()
        self.removed = False

    def has_synced(self) -> bool:
        return self._synced.is_set()

    def _deliver(self, note: _Note) -> None:
        if self.removed:
            return
        if isinstance(note, _Synced):
            self._synced.set()
        elif isinstance(note, _Add):
            self.handler.on_add(note.obj, note.initial)
        elif isinstance(note, _Update):
            self.handler.on_update(note.old, note.new)
        else:
            self.handler.on_delete(note.obj)


class _Sink:
    """The reflector's store: writes the cache and queues notifications in one critical section."""

    def __init__(self, informer: SharedInformer) -> None:
        self._inf = informer

    def replace(
        self, objs: list[Object], resource_version: str, *, transformed: bool = False
    ) -> None:
        inf = self._inf
        with inf._cond:
            result = inf.indexer.replace(objs, resource_version, transformed=transformed)
            initial = not inf._synced
            targets = tuple(inf._registrations)
            pending = inf._pending
            pending.extend((targets, _Add(o, initial)) for o in result.added)
            pending.extend((targets, _Update(old, new)) for old, new in result.updated)
            pending.extend((targets, _Delete(t)) for t in result.deleted)
            if initial:
                inf._synced = True
                pending.append((targets, _Synced()))
            inf._cond.notify()

    def add(self, obj: Object) -> None:
        inf = self._inf
        with inf._cond:
            old, new = inf.indexer.upsert(obj)
            note: _Note = _Add(new, False) if old is None else _Update(old, new)
            inf._pending.append((tuple(inf._registrations), note))
            inf._cond.notify()

    update = add

    def delete(self, obj: Object) -> None:
        inf = self._inf
        with inf._cond:
            if inf.indexer.delete(obj) is None:
                return  # never cached: nobody was told it existed
            final = inf.indexer.transform(obj)
            inf._pending.append((tuple(inf._registrations), _Delete(final)))
            inf._cond.notify()

    def resync(self) -> None:
        inf = self._inf
        with inf._cond:
            targets = tuple(inf._registrations)
            inf._pending.extend((targets, _Update(o, o)) for o in inf.indexer.list())
            inf._cond.notify()


class SharedInformer:
    """A reflector + cache + dispatch thread for one kind (one ListerWatcher)."""

    def __init__(
        self,
        lister_watcher: ListerWatcher,
        *,
        name: str = "",
        resync_period: float = 0.0,
        transform: Transform | None = drop_managed_fields,
        indexers: Mapping[str, IndexFunc] | None = None,
        clock: Clock = REAL_CLOCK,
        page_size: int = PAGE_SIZE,
        min_watch_timeout: int = 300,
        backoff: Backoff | None = None,
        rand: random.Random | None = None,
    ) -> None:
        self.name = name
        self.indexer = Indexer(indexers=indexers, transform=transform)
        self._cond = threading.Condition()
        self._registrations: list[HandlerRegistration] = []
        self._pending: deque[tuple[tuple[HandlerRegistration, ...], _Note]] = deque()
        self._synced = False
        self._started = False
        self._stopping = False
        self._reflector = Reflector(
            lister_watcher,
            _Sink(self),
            name=name,
            page_size=page_size,
            min_watch_timeout=min_watch_timeout,
            resync_period=resync_period,
            clock=clock,
            rand=rand,
            backoff=backoff,
            transform=self.indexer.transform,
        )

    # -- handlers -------------------------------------------------------------------------------

    def add_event_handler(self, handler: EventHandler) -> HandlerRegistration:
        reg = HandlerRegistration(handler)
        with self._cond:
            self._registrations.append(reg)
            if self._synced:
                # Late subscriber: replay the cache as its initial list.
                self._pending.extend(((reg,), _Add(o, True)) for o in self.indexer.list())
                self._pending.append(((reg,), _Synced()))
                self._cond.notify()
        return reg

    def remove_event_handler(self, reg: HandlerRegistration) -> None:
        with self._cond:
            reg.removed = True
            if reg in self._registrations:
                self._registrations.remove(reg)

    def add_indexers(self, indexers: Mapping[str, IndexFunc]) -> None:
        self.indexer.add_indexers(indexers)

    def lister(self) -> Lister:
        return Lister(self.indexer)

    # -- state ----------------------------------------------------------------------------------

    def has_synced(self) -> bool:
        with self._cond:
            return self._synced

    def last_sync_resource_version(self) -> str:
        return self._reflector.last_sync_resource_version()

    def is_started(self) -> bool:
        with self._cond:
            return self._started

    # -- running --------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Run the reflector and dispatch threads until ``stop`` is set; then join them."""
        self._claim_start()
        self._run(stop)

    def start(self, stop: threading.Event) -> threading.Thread:
        """:meth:`run` in a new daemon thread, which is returned."""
        self._claim_start()
        thread = threading.Thread(
            target=self._run, args=(stop,), name=f"informer-run-{self.name}", daemon=True
        )
        thread.start()
        return thread

    def _claim_start(self) -> None:
        with self._cond:
            if self._started:
                raise RuntimeError(f"informer {self.name!r} already started")
            self._started = True

    def _run(self, stop: threading.Event) -> None:
        reflector = threading.Thread(
            target=self._reflector.run, args=(stop,), name=f"reflector-{self.name}", daemon=True
        )
        dispatch = threading.Thread(
            target=self._dispatch_loop, name=f"informer-{self.name}", daemon=True
        )
        reflector.start()
        dispatch.start()
        stop.wait()
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        reflector.join()
        dispatch.join()

    def _dispatch_loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                targets, note = self._pending.popleft()
            for reg in targets:
                try:
                    reg._deliver(note)
                except Exception:  # one failing handler must not stop delivery to the others
                    log.exception("event handler failed", informer=self.name)


def wait_for_cache_sync(
    stop: threading.Event,
    *has_synced: Callable[[], bool],
    timeout: float = 120.0,
    clock: Clock = REAL_CLOCK,
    poll_interval: float = 0.1,
) -> bool:
    """Poll until every ``has_synced`` is true; False on ``stop`` or after ``timeout`` seconds."""
    deadline = clock.now() + timeout
    while True:
        if all(fn() for fn in has_synced):
            return True
        left = deadline - clock.now()
        if left <= 0 or clock.sleep(min(poll_interval, left), stop):
            return False


class InformerFactory:
    """A registry that hands out exactly one :class:`SharedInformer` per key."""

    def __init__(self, *, clock: Clock = REAL_CLOCK, resync_period: float = 0.0) -> None:
        self._clock = clock
        self._resync_period = resync_period
        self._lock = threading.Lock()
        self._informers: dict[Hashable, SharedInformer] = {}
        self._threads: list[threading.Thread] = []

    def informer_for(
        self,
        key: Hashable,
        lister_watcher: Callable[[], ListerWatcher],
        *,
        transform: Transform | None = drop_managed_fields,
        indexers: Mapping[str, IndexFunc] | None = None,
    ) -> SharedInformer:
        """The informer for ``key``, created from ``lister_watcher()`` on first request.

        Later callers share it; indexers they ask for are added if not yet registered (the
        ``transform`` of the first caller wins).
        """
        with self._lock:
            informer = self._informers.get(key)
            if informer is None:
                informer = SharedInformer(
                    lister_watcher(),
                    name=str(key),
                    resync_period=self._resync_period,
                    transform=transform,
                    indexers=indexers,
                    clock=self._clock,
                )
                self._informers[key] = informer
                return informer
        if indexers:
            known: set[str] = set(informer.indexer.list_index_names())
            missing = {k: v for k, v in indexers.items() if k not in known}
            if missing:
                informer.add_indexers(missing)
        return informer

    def informers(self) -> dict[Hashable, SharedInformer]:
        with self._lock:
            return dict(self._informers)

    def start(self, stop: threading.Event) -> None:
        """Start every informer not yet started (call again after asking for new ones)."""
        with self._lock:
            for informer in self._informers.values():
                if not informer.is_started():
                    self._threads.append(informer.start(stop))

    def wait_for_cache_sync(self, stop: threading.Event, *, timeout: float = 120.0) -> bool:
        return wait_for_cache_sync(
            stop,
            *(i.has_synced for i in self.informers().values()),
            timeout=timeout,
            clock=self._clock,
        )

    def join(self) -> None:
        """Wait for started informers to stop (after ``stop`` was set)."""
        for thread in self._threads:
            thread.join()
