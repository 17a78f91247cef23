"""The list/watch contract between the reflector and an API client.

:class:`ListerWatcher` is what :class:`~aimctrl.machinery.reflector.Reflector` consumes; the
``kubernetes``-facing implementation lives in :mod:`aimctrl.kube.client`, and unit tests script
their own. Guarantees an implementation must give:

* ``list`` returns one page; ``ListPage.continue_`` is a token for the next page or ``None``.
  ``resource_version`` of a page is the list's resource version (the same on every page).
* ``watch`` opens the stream before returning (so errors opening it raise from ``watch`` itself)
  and yields events in the order the server sent them. The stream ends cleanly when the server's
  ``timeoutSeconds`` elapses, and :meth:`WatchStream.close` (callable from any thread) makes a
  blocked iteration end promptly.
* An expired resource version — HTTP 410 on list or watch, or an ``ERROR`` event whose status has
  code 410 — raises :class:`GoneError`. Any other failure to list or watch raises
  :class:`WatchError` (or any exception: the reflector treats unknown exceptions like
  ``WatchError``). No request may block forever: implementations set read timeouts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from aimctrl.machinery.store import Object

__all__ = [
    "EventType",
    "GoneError",
    "ListPage",
    "ListerWatcher",
    "WatchError",
    "WatchEvent",
    "WatchStream",
]


class EventType(StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"
    BOOKMARK = "BOOKMARK"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: EventType
    object: Object


@dataclass(frozen=True, slots=True)
class ListPage:
    items: list[Object]
    resource_version: str
    continue_: str | None = None


class WatchError(Exception):
    """Listing or watching failed; ``status`` is the HTTP status (or Status code) when known."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class GoneError(WatchError):
    """The requested resource version is too old (HTTP 410 Gone / Expired): relist."""

    def __init__(self, message: str = "resource version too old") -> None:
        super().__init__(message, status=410)


class WatchStream(Protocol):
    """An open watch: iterate it for events; ``close()`` ends it from any thread."""

    def __iter__(self) -> Iterator[WatchEvent]: ...

    def close(self) -> None: ...


class ListerWatcher(Protocol):
    def list(
        self, *, limit: int | None, continue_: str | None, resource_version: str | None
    ) -> ListPage:
        """One page of the collection. ``resource_version`` ``None``/``""`` = consistent read."""
        ...

    def watch(
        self, *, resource_version: str, timeout_seconds: int, allow_bookmarks: bool
    ) -> WatchStream:
        """Open a watch starting after ``resource_version``."""
        ...
