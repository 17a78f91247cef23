"""Listers: read-only queries over an informer's cache (client-go's generated listers).

Guarantees: every method answers from memory without I/O, and returns the cached dicts themselves
(shared and read-only — see :mod:`aimctrl.machinery.store`). Namespaced queries use the
``"namespace"`` index, so they cost O(objects in that namespace), not O(cache).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from typing import TypeVar

from aimctrl.machinery.store import NAMESPACE_INDEX, Indexer, Object

__all__ = ["Lister", "NamespacedLister", "labels_match"]

T = TypeVar("T")


def labels_match(obj: Object, selector: Mapping[str, str] | None) -> bool:
    """Equality-based label selection: every ``key: value`` of ``selector`` is on ``obj``."""
    if not selector:
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


class Lister:
    """Queries over one kind's cache."""

    def __init__(self, indexer: Indexer) -> None:
        self._indexer = indexer

    def get(self, name: str, namespace: str = "") -> Object | None:
        """The object named ``name`` (in ``namespace``; ``""`` for cluster-scoped), or None."""
        return self._indexer.get_by_key(f"{namespace}/{name}" if namespace else name)

    def list(
        self, namespace: str | None = None, selector: Mapping[str, str] | None = None
    ) -> list[Object]:
        """All objects, or those in ``namespace``, that carry every label in ``selector``."""
        if namespace is None:
            objs = self._indexer.list()
        else:
            objs = self._indexer.by_index(NAMESPACE_INDEX, namespace)
        if not selector:
            return objs
        return [o for o in objs if labels_match(o, selector)]

    def by_index(self, index: str, value: str) -> builtins.list[Object]:
        return self._indexer.by_index(index, value)

    def decode(self, obj: Object, decode: Callable[[Object], T]) -> T:
        """``decode(obj)`` for an object of this cache, decoded once per version and shared
        (read-only, like ``obj`` itself): see :mod:`aimctrl.machinery.decoded`."""
        return self._indexer.decoded.get(obj, decode)

    def namespaced(self, namespace: str) -> NamespacedLister:
        return NamespacedLister(self, namespace)


class NamespacedLister:
    """A :class:`Lister` narrowed to one namespace."""

    def __init__(self, lister: Lister, namespace: str) -> None:
        self._lister = lister
        self.namespace = namespace

    def get(self, name: str) -> Object | None:
        return self._lister.get(name, self.namespace)

    def list(self, selector: Mapping[str, str] | None = None) -> list[Object]:
        return self._lister.list(self.namespace, selector)
