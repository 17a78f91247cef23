"""Helpers every reconciler uses to write status: the clock's time, conditions, the apply body.

Guarantees:

* :func:`wall_now` is the injected clock's wall time in whole seconds (what the API stores);
* :func:`set_condition` follows apimachinery's ``SetStatusCondition`` (``lastTransitionTime``
  moves only when the status flips) and says both whether anything changed (a write is due)
  and whether status or reason changed (an event is due: events mark transitions only);
* :func:`involved_object` is the minimal object an event names;
* :func:`status_apply_body` holds exactly ``apiVersion``, ``kind``, ``metadata.name`` (and
  ``namespace`` for namespaced objects) and the given status: a server-side apply body that
  claims only the status fields its field manager owns.
"""

from __future__ import annotations

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
