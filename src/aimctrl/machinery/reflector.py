"""The reflector: keeps a store equal to the server's collection by listing, then watching.

Guarantees (client-go's ``tools/cache/reflector.go`` semantics):

* **List** in pages of ``page_size`` (500) following ``continue`` tokens when listing at RV
  ``""`` (a consistent read: the first list, and the fallback after a 410); a relist at a known
  RV is one unpaged request so the watch cache can serve it. The first list is not made at RV
  ``"0"`` as client-go's is: the watch cache ignores ``limit`` there (measured on
  kube-apiserver 1.36: 1,200 ConfigMaps came back in one response to ``limit=500``), so 50,000
  objects would arrive, and be decoded, as one 160 MB body. An expired continue token
  restarts the list unpaged; a 410 on a relist at the last RV falls back to RV ``""`` at once.
  The whole list is applied with one ``store.replace`` (which synthesizes tombstones for keys that
  vanished while the watch was down).
* **Watch** from the list's RV with bookmarks and a server timeout drawn uniformly from
  ``[min_watch_timeout, 2 * min_watch_timeout]`` (300 to 600 s). The stored RV advances only from
  events whose order the server guarantees: every event of a watch started at a concrete RV, and
  bookmarks. (A watch started at ``""``/``"0"`` replays synthetic ADDED events in no RV order; the
  RV is not taken from them until a non-ADDED event arrives.)
* A watch that **ends cleanly** is re-opened at once from the last RV, without relisting — unless it
  ended within ``min_watch_duration`` without a single event, which counts as an error.
* **410 Gone** (on open or as an ``ERROR`` event) ⇒ relist. HTTP 429 or a transport failure while
  opening ⇒ back off, re-watch. Any other error ⇒ back off, relist.
* **Backoff** is full jitter over 0.8 s doubling to 30 s, reset after 2 min without a backoff; all
  waits go through the injected clock and end at once when ``stop`` is set.
* Setting ``stop`` closes the open watch stream, so :meth:`Reflector.run` returns promptly (a list
  request in flight finishes first; the ListerWatcher bounds it with a timeout).
* With ``resync_period > 0`` the store's ``resync()`` is called every period once synced (a replay
  of the cache to handlers, not a relist).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Protocol

import structlog

from aimctrl.machinery.clock import REAL_CLOCK, Clock
from aimctrl.machinery.listwatch import (
    EventType,
    GoneError,
    ListerWatcher,
    WatchError,
    WatchEvent,
    WatchStream,
)
from aimctrl.machinery.store import Object, Transform

__all__ = ["Backoff", "Reflector", "ReflectorStore"]

log = structlog.get_logger(__name__)

PAGE_SIZE = 500


class ReflectorStore(Protocol):
    """Where the reflector writes (an :class:`~aimctrl.machinery.store.Indexer` or an informer)."""

    def replace(
        self, objs: list[Object], resource_version: str, *, transformed: bool = False
    ) -> object: ...

    def add(self, obj: Object) -> object: ...

    def update(self, obj: Object) -> object: ...

    def delete(self, obj: Object) -> object: ...

    def resync(self) -> None: ...


class Backoff:
    """Exponential backoff with full jitter: ``uniform(0, min(cap, initial * 2**n))``.

    The step count resets when more than ``reset_after`` seconds passed since the last delay was
    handed out, so a long healthy period starts again from ``initial``.
    """

    def __init__(
        self,
        *,
        clock: Clock = REAL_CLOCK,
        initial: float = 0.8,
        cap: float = 30.0,
        reset_after: float = 120.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._clock = clock
        self._initial = initial
        self._cap = cap
        self._reset_after = reset_after
        self._rand = rand
        self._steps = 0
        self._last: float | None = None

    def next_delay(self) -> float:
        now = self._clock.now()
        if self._last is not None and now - self._last > self._reset_after:
            self._steps = 0
        ceiling = min(self._cap, self._initial * (2.0**self._steps))
        if ceiling < self._cap:
            self._steps += 1
        self._last = now
        return ceiling * self._rand()


class _RetryWatchError(Exception):
    """Back off and open the watch again, keeping the store (no relist)."""


class _StoppedError(Exception):
    """``stop`` was set in the middle of a list."""


class Reflector:
    """Runs list+watch for one ListerWatcher into one store; see the module docstring."""

    def __init__(
        self,
        lister_watcher: ListerWatcher,
        store: ReflectorStore,
        *,
        name: str = "",
        page_size: int = PAGE_SIZE,
        min_watch_timeout: int = 300,
        min_watch_duration: float = 1.0,
        resync_period: float = 0.0,
        clock: Clock = REAL_CLOCK,
        rand: random.Random | None = None,
        backoff: Backoff | None = None,
        transform: Transform | None = None,
    ) -> None:
        self._lw = lister_watcher
        self._store = store
        self._transform = transform
        self._name = name
        self._page_size = page_size
        self._min_watch_timeout = min_watch_timeout
        self._min_watch_duration = min_watch_duration
        self._resync_period = resync_period
        self._clock = clock
        self._rand = rand if rand is not None else random.Random()  # noqa: S311 - jitter, not crypto
        self._backoff = backoff if backoff is not None else Backoff(clock=clock)
        self._lock = threading.Lock()
        self._stream: WatchStream | None = None
        self._last_rv = ""
        self._last_rv_unavailable = False
        self._synced = False
        self._ordered = False
        self._log = log.bind(reflector=name)

    # -- state ----------------------------------------------------------------------------------

    def has_synced(self) -> bool:
        """True once one full list has been written to the store."""
        with self._lock:
            return self._synced

    def last_sync_resource_version(self) -> str:
        """The RV up to which the store has absorbed the server's changes (``""`` before sync)."""
        with self._lock:
            return self._last_rv

    # -- loop -----------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """List and watch until ``stop`` is set. Blocks; run it in its own thread."""
        aux = threading.Thread(
            target=self._aux_loop, args=(stop,), name=f"reflector-aux-{self._name}", daemon=True
        )
        aux.start()
        try:
            self._loop(stop)
        finally:
            aux.join()

    def _loop(self, stop: threading.Event) -> None:
        need_list = True
        while not stop.is_set():
            try:
                if need_list:
                    self._list(stop)
                    need_list = False
                self._watch(stop)
                continue
            except _StoppedError:
                return
            except GoneError as e:
                self._log.info("watch expired, relisting", rv=self._last_rv, error=str(e))
                need_list = True
            except _RetryWatchError as e:
                self._log.info("watch not open, retrying", error=str(e))
            except Exception as e:  # noqa: BLE001 - the loop must outlive any list/watch failure
                self._log.warning("list/watch failed", error=str(e), error_type=type(e).__name__)
                need_list = True
            if self._clock.sleep(self._backoff.next_delay(), stop):
                return

    def _aux_loop(self, stop: threading.Event) -> None:
        """Close the open stream when ``stop`` is set; run the periodic resync meanwhile."""
        if self._resync_period <= 0:
            stop.wait()
        else:
            while not self._clock.sleep(self._resync_period, stop):
                if self.has_synced():
                    self._store.resync()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()

    # -- list -----------------------------------------------------------------------------------

    def _relist_resource_version(self) -> str:
        if self._last_rv_unavailable:
            return ""
        return self._last_rv or ""

    def _list(self, stop: threading.Event) -> None:
        rv = self._relist_resource_version()
        try:
            items, list_rv = self._list_pages(rv, stop)
        except GoneError:
            if rv == "":
                raise
            self._log.info("list RV expired, listing consistently", rv=rv)
            self._last_rv_unavailable = True
            items, list_rv = self._list_pages("", stop)
        self._last_rv_unavailable = False
        self._store.replace(items, list_rv, transformed=self._transform is not None)
        with self._lock:
            self._last_rv = list_rv
            self._synced = True
        self._log.debug("listed", rv=list_rv, count=len(items))

    def _list_pages(self, rv: str, stop: threading.Event) -> tuple[list[Object], str]:
        # A relist at a concrete RV is left unpaged so the apiserver's watch cache serves it.
        limit: int | None = self._page_size if rv in ("", "0") else None
        items: list[Object] = []
        continue_: str | None = None
        list_rv = ""
        while True:
            if stop.is_set():
                raise _StoppedError
            try:
                page = self._lw.list(
                    limit=limit,
                    continue_=continue_,
                    resource_version=None if continue_ else rv,
                )
            except GoneError:
                if continue_ is None:
                    raise
                # The continue token expired mid-list: start over with one unpaged list.
                self._log.info("continue token expired, listing unpaged")
                limit, continue_, items = None, None, []
                continue
            if continue_ is None:
                list_rv = page.resource_version
            # Transformed page by page: the untransformed objects of one page at a time are
            # alive, not those of the whole list (measured: the whole list decoded and then
            # transformed left half of the allocator's arenas free but held).
            items.extend(
                page.items if self._transform is None else map(self._transform, page.items)
            )
            continue_ = page.continue_ or None
            if continue_ is None:
                return items, list_rv

    # -- watch ----------------------------------------------------------------------------------

    def _watch(self, stop: threading.Event) -> None:
        lo = self._min_watch_timeout
        timeout = self._rand.randint(lo, 2 * lo)
        start_rv = self.last_sync_resource_version()
        self._ordered = start_rv not in ("", "0")
        try:
            stream = self._lw.watch(
                resource_version=start_rv, timeout_seconds=timeout, allow_bookmarks=True
            )
        except GoneError:
            raise
        except WatchError as e:
            if e.status is None or e.status == 429:
                raise _RetryWatchError(str(e)) from e
            raise
        with self._lock:
            self._stream = stream
        if stop.is_set():
            stream.close()
        started = self._clock.now()
        count = 0
        try:
            for event in stream:
                if stop.is_set():
                    return
                count += 1
                self._handle(event)
        finally:
            with self._lock:
                self._stream = None
            stream.close()
        if stop.is_set():
            return
        if count == 0 and self._clock.now() - started < self._min_watch_duration:
            raise _RetryWatchError("very short watch: ended at once without events")

    def _handle(self, event: WatchEvent) -> None:
        kind = event.type
        obj = event.object
        if kind == EventType.ERROR:
            code = obj.get("code")
            message = str(obj.get("message", "watch error"))
            if code == 410:
                raise GoneError(message)
            raise WatchError(message, status=code if isinstance(code, int) else None)
        rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if kind == EventType.BOOKMARK:
            self._advance(rv)
            return
        if kind == EventType.ADDED:
            self._store.add(obj)
        elif kind == EventType.MODIFIED:
            self._ordered = True
            self._store.update(obj)
        elif kind == EventType.DELETED:
            self._ordered = True
            self._store.delete(obj)
        else:
            raise WatchError(f"unknown watch event type {kind!r}")
        if self._ordered:
            self._advance(rv)

    def _advance(self, rv: str) -> None:
        if rv:
            with self._lock:
                self._last_rv = rv
