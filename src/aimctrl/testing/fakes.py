"""A scripted ListerWatcher for reflector and informer unit tests (no I/O, no sleeping)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from aimctrl.machinery.listwatch import EventType, ListPage, WatchEvent


def obj(name: str, rv: str, *, namespace: str = "ns", **extra: object) -> dict[str, object]:
    meta: dict[str, object] = {"name": name, "namespace": namespace, "resourceVersion": rv}
    meta.update(extra)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


def ev(kind: str, o: dict[str, object]) -> WatchEvent:
    return WatchEvent(EventType(kind), o)


def bookmark(rv: str) -> WatchEvent:
    return WatchEvent(EventType.BOOKMARK, {"metadata": {"resourceVersion": rv}})


def error_event(code: int) -> WatchEvent:
    return WatchEvent(EventType.ERROR, {"kind": "Status", "code": code, "message": f"code {code}"})


@dataclass(frozen=True)
class ListCall:
    limit: int | None
    continue_: str | None
    resource_version: str | None


@dataclass(frozen=True)
class WatchCall:
    resource_version: str
    timeout_seconds: int
    allow_bookmarks: bool


class FakeStream:
    """Yields its script; then ends (``block=False``) or blocks until closed."""

    def __init__(self, script: Sequence[WatchEvent | Exception], *, block: bool) -> None:
        self._script = list(script)
        self._block = block
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[WatchEvent]:
        for item in self._script:
            if self.closed.is_set():
                return
            if isinstance(item, Exception):
                raise item
            yield item
        if self._block:
            self.closed.wait(10)

    def close(self) -> None:
        self.closed.set()


class ScriptedListerWatcher:
    """Answers ``list``/``watch`` from scripts, recording every call.

    When the watch script runs out, ``watch`` hands out a stream that blocks until closed and sets
    :attr:`idle`, so a test can wait until the reflector has consumed everything.
    """

    def __init__(self) -> None:
        self.lists: deque[ListPage | Exception] = deque()
        self.watches: deque[Sequence[WatchEvent | Exception] | Exception] = deque()
        self.list_calls: list[ListCall] = []
        self.watch_calls: list[WatchCall] = []
        self.idle = threading.Event()
        self.called = threading.Condition()

    def list(
        self, *, limit: int | None, continue_: str | None, resource_version: str | None
    ) -> ListPage:
        with self.called:
            self.list_calls.append(ListCall(limit, continue_, resource_version))
            self.called.notify_all()
        item = self.lists.popleft() if self.lists else ListPage([], "1")
        if isinstance(item, Exception):
            raise item
        return item

    def watch(
        self, *, resource_version: str, timeout_seconds: int, allow_bookmarks: bool
    ) -> FakeStream:
        with self.called:
            self.watch_calls.append(WatchCall(resource_version, timeout_seconds, allow_bookmarks))
            self.called.notify_all()
        if not self.watches:
            self.idle.set()
            return FakeStream([], block=True)
        item = self.watches.popleft()
        if isinstance(item, Exception):
            raise item
        return FakeStream(item, block=False)

    def wait_calls(self, *, lists: int = 0, watches: int = 0, timeout: float = 5.0) -> bool:
        with self.called:
            return self.called.wait_for(
                lambda: len(self.list_calls) >= lists and len(self.watch_calls) >= watches,
                timeout,
            )
