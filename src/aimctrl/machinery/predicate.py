"""Predicates: filters that decide whether an event reaches a controller's queue.

Guarantees: a predicate never mutates the objects it sees; every method defaults to "pass"; and
predicates combine with ``&``, ``|`` and ``~`` (or :func:`and_`, :func:`or_`, :func:`not_`).
``delete`` receives the unwrapped object (a tombstone's last known state, or a metadata-only stub).

Caveat of :class:`ViewChanged`: the view must cover everything the controller reads from the
object, or a change to the rest is missed until the next change that is in the view.

Caveat of :class:`GenerationChanged` (as in controller-runtime): with a status subresource the
generation moves only on spec changes, so a controller using it will not see someone wiping its
status; and kinds without ``metadata.generation`` never pass an update.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aimctrl.machinery.lister import labels_match
from aimctrl.machinery.store import Object

__all__ = [
    "AnnotationChanged",
    "Funcs",
    "GenerationChanged",
    "LabelChanged",
    "LabelSelector",
    "Predicate",
    "ResourceVersionChanged",
    "ViewChanged",
    "and_",
    "not_",
    "or_",
    "stable_metadata",
]


def _meta(obj: Mapping[str, Any]) -> Mapping[str, object]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


class Predicate:
    """Passes everything; subclasses override the event kinds they filter."""

    def create(self, obj: Object) -> bool:
        return True

    def update(self, old: Object, new: Object) -> bool:
        return True

    def delete(self, obj: Object) -> bool:
        return True

    def __and__(self, other: Predicate) -> Predicate:
        return _And((self, other))

    def __or__(self, other: Predicate) -> Predicate:
        return _Or((self, other))

    def __invert__(self) -> Predicate:
        return _Not(self)


class _And(Predicate):
    def __init__(self, preds: tuple[Predicate, ...]) -> None:
        self._preds = preds

    def create(self, obj: Object) -> bool:
        return all(p.create(obj) for p in self._preds)

    def update(self, old: Object, new: Object) -> bool:
        return all(p.update(old, new) for p in self._preds)

    def delete(self, obj: Object) -> bool:
        return all(p.delete(obj) for p in self._preds)


class _Or(Predicate):
    def __init__(self, preds: tuple[Predicate, ...]) -> None:
        self._preds = preds

    def create(self, obj: Object) -> bool:
        return any(p.create(obj) for p in self._preds)

    def update(self, old: Object, new: Object) -> bool:
        return any(p.update(old, new) for p in self._preds)

    def delete(self, obj: Object) -> bool:
        return any(p.delete(obj) for p in self._preds)


class _Not(Predicate):
    def __init__(self, pred: Predicate) -> None:
        self._pred = pred

    def create(self, obj: Object) -> bool:
        return not self._pred.create(obj)

    def update(self, old: Object, new: Object) -> bool:
        return not self._pred.update(old, new)

    def delete(self, obj: Object) -> bool:
        return not self._pred.delete(obj)


def and_(*preds: Predicate) -> Predicate:
    """Passes when every predicate passes (an empty ``and_`` passes everything)."""
    return _And(preds)


def or_(*preds: Predicate) -> Predicate:
    """Passes when any predicate passes (an empty ``or_`` passes nothing)."""
    return _Or(preds)


def not_(pred: Predicate) -> Predicate:
    return _Not(pred)


class Funcs(Predicate):
    """A predicate from plain functions; an omitted function passes."""

    def __init__(
        self,
        *,
        create: Callable[[Object], bool] | None = None,
        update: Callable[[Object, Object], bool] | None = None,
        delete: Callable[[Object], bool] | None = None,
    ) -> None:
        self._create = create
        self._update = update
        self._delete = delete

    def create(self, obj: Object) -> bool:
        return self._create is None or self._create(obj)

    def update(self, old: Object, new: Object) -> bool:
        return self._update is None or self._update(old, new)

    def delete(self, obj: Object) -> bool:
        return self._delete is None or self._delete(obj)


class GenerationChanged(Predicate):
    """Drops updates that leave ``metadata.generation`` unchanged (status-only writes, resyncs)."""

    def update(self, old: Object, new: Object) -> bool:
        return _meta(old).get("generation") != _meta(new).get("generation")


class ResourceVersionChanged(Predicate):
    """Drops updates with an unchanged ``metadata.resourceVersion`` (resyncs, relists)."""

    def update(self, old: Object, new: Object) -> bool:
        return _meta(old).get("resourceVersion") != _meta(new).get("resourceVersion")


def stable_metadata(obj: Mapping[str, Any]) -> dict[str, object]:
    """``metadata`` without what every write moves (``resourceVersion``, ``managedFields``): the
    metadata part of a view for :class:`ViewChanged`."""
    return {k: v for k, v in _meta(obj).items() if k not in ("resourceVersion", "managedFields")}


class ViewChanged(Predicate):
    """Passes an update when ``view(old) != view(new)``: the part of an object a controller's
    result depends on moved. Replays of the same version (resyncs, relists) always pass, so a
    periodic resync still reaches the controller. ``view`` must be pure and cheap; it is called
    twice per update event on the informer's dispatch thread.
    """

    def __init__(self, view: Callable[[Object], object]) -> None:
        self._view = view

    def update(self, old: Object, new: Object) -> bool:
        version = _meta(new).get("resourceVersion")
        if version is not None and _meta(old).get("resourceVersion") == version:
            return True
        return bool(self._view(old) != self._view(new))


class LabelChanged(Predicate):
    def update(self, old: Object, new: Object) -> bool:
        return (_meta(old).get("labels") or {}) != (_meta(new).get("labels") or {})


class AnnotationChanged(Predicate):
    def update(self, old: Object, new: Object) -> bool:
        return (_meta(old).get("annotations") or {}) != (_meta(new).get("annotations") or {})


class LabelSelector(Predicate):
    """Passes objects carrying every label of ``match_labels`` (on update: the new object)."""

    def __init__(self, match_labels: Mapping[str, str]) -> None:
        self._selector = dict(match_labels)

    def create(self, obj: Object) -> bool:
        return labels_match(obj, self._selector)

    def update(self, old: Object, new: Object) -> bool:
        return labels_match(new, self._selector)

    def delete(self, obj: Object) -> bool:
        return labels_match(obj, self._selector)
