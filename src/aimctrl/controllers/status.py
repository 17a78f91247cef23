"""Helpers every reconciler uses to write status: the clock's time, conditions, the apply body.

Guarantees:

* :func:`wall_now` is the injected clock's wall time in whole seconds (what the API stores);
* :func:`set_condition` follows apimachinery's ``SetStatusCondition`` (``lastTransitionTime``
  moves only when the status flips) and says both whether anything changed (a write is due)
  and whether status or reason changed (an event is due: events mark transitions only);
* :func:`involved_object` is the minimal object an event names;
* :func:`status_apply_body` holds exactly ``apiVersion``, ``kind``, ``metadata.name`` (and
  ``namespace`` for namespaced objects) and the given status: a server-side apply body that
  claims only the status fields its field manager owns;
* :class:`WriteMemo` remembers, per object, the status body a reconciler last applied and the
  ``resourceVersion`` it was computed from: while the cache still shows that version, the same
  body (``lastTransitionTime`` aside: recomputed from the same stale object a second later, it
  is the only thing that moves) is not applied again — the cache has not caught up with the write
  yet and writing again would change nothing. Any other version or body writes as usual.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from aimctrl.api.conditions import find, set_status_condition
from aimctrl.api.v1alpha1.common import API_VERSION, Condition
from aimctrl.api.v1alpha1.enums import ConditionStatus
from aimctrl.machinery.clock import Clock

__all__ = [
    "ConditionChange",
    "Named",
    "WriteMemo",
    "involved_object",
    "set_condition",
    "status_apply_body",
    "wall_now",
]


class _Metadata(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def namespace(self) -> str | None: ...


class Named(Protocol):
    """An AIM object as parsed: its kind and metadata."""

    @property
    def kind(self) -> str: ...
    @property
    def metadata(self) -> _Metadata: ...


class _ObjectMeta(_Metadata, Protocol):
    @property
    def uid(self) -> str | None: ...
    @property
    def resource_version(self) -> str | None: ...


class _Identified(Named, Protocol):
    @property
    def metadata(self) -> _ObjectMeta: ...


def wall_now(clock: Clock) -> datetime:
    """The clock's wall time, truncated to whole seconds, in UTC."""
    return datetime.fromtimestamp(int(clock.wall()), UTC)


@dataclass(frozen=True)
class ConditionChange:
    """What :func:`set_condition` did."""

    changed: bool
    """Anything in the condition changed (status, reason, message or observed generation)."""
    transitioned: bool
    """Status or reason changed (or the condition is new): worth an event."""


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    *,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> ConditionChange:
    """Set the condition ``type_`` in ``conditions`` (in place)."""
    before = find(conditions, type_)
    old = (before.status, before.reason) if before is not None else None
    changed = set_status_condition(
        conditions,
        Condition(
            type=type_,
            status=status,
            reason=str(reason),
            message=message,
            observed_generation=generation,
        ),
        now,
    )
    return ConditionChange(changed=changed, transitioned=old != (status, str(reason)))


def status_apply_body(obj: Named, status: dict[str, Any]) -> dict[str, Any]:
    """The server-side apply body for ``obj``'s status subresource holding only ``status``."""
    metadata: dict[str, Any] = {"name": obj.metadata.name}
    if obj.metadata.namespace:
        metadata["namespace"] = obj.metadata.namespace
    return {"apiVersion": API_VERSION, "kind": obj.kind, "metadata": metadata, "status": status}


def involved_object(obj: _Identified) -> dict[str, Any]:
    """The minimal object an :class:`~aimctrl.controllers.context.EventRecorder` event names."""
    return {
        "apiVersion": API_VERSION,
        "kind": obj.kind,
        "metadata": {
            "name": obj.metadata.name,
            "namespace": obj.metadata.namespace,
            "uid": obj.metadata.uid,
            "resourceVersion": obj.metadata.resource_version,
        },
    }


class WriteMemo:
    """The status bodies a reconciler applied, by object key (see the module docstring).

    Without it, an object reconciled twice in quick succession (a template and then its model's
    status change, both within one watch round trip) is written twice with the same body, because
    the second reconcile still reads the cached object from before the first write. Bounded: at
    most ``max_entries`` keys (least recently written dropped first); an entry is dropped as soon
    as the cache shows another version of its object.
    """

    def __init__(self, max_entries: int = 8192) -> None:
        self._max = max_entries
        self._lock = threading.Lock()
        self._written: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()

    def already_written(self, key: str, cached_version: str | None, body: dict[str, Any]) -> bool:
        """True if ``body`` was applied on top of ``cached_version``, the version still cached."""
        with self._lock:
            entry = self._written.get(key)
            if entry is None:
                return False
            version, written = entry
            if version != (cached_version or ""):
                del self._written[key]  # the cache moved on: the entry has done its job
                return False
            return written == _timeless(body)

    def record(self, key: str, cached_version: str | None, body: dict[str, Any]) -> None:
        """Remember that ``body`` was applied to the object whose cached version was given."""
        with self._lock:
            self._written[key] = (cached_version or "", _timeless(body))
            self._written.move_to_end(key)
            while len(self._written) > self._max:
                self._written.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._written)

    def apply_once(
        self, obj: _Identified, body: dict[str, Any], apply: Callable[[], object]
    ) -> bool:
        """Call ``apply`` (which writes ``body``) unless it was already written on top of the
        cached ``obj``; True if it was called."""
        key = f"{obj.metadata.namespace or ''}/{obj.metadata.name}"
        version = obj.metadata.resource_version
        if self.already_written(key, version, body):
            return False  # applied a moment ago; the cache has not seen it yet
        apply()
        self.record(key, version, body)
        return True


def _timeless(status: dict[str, Any]) -> dict[str, Any]:
    """``status`` without its conditions' ``lastTransitionTime``."""
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        return status
    return {
        **status,
        "conditions": [
            {k: v for k, v in c.items() if k != "lastTransitionTime"} if isinstance(c, dict) else c
            for c in conditions
        ],
    }
