"""A thread-safe, indexed cache of API objects (client-go's ``ThreadSafeStore`` + ``Indexer``).

Guarantees:

* Objects are plain ``dict`` trees decoded from JSON, keyed by ``"namespace/name"`` (or ``"name"``
  for cluster-scoped objects). Every public method is safe to call from any thread.
* **Objects handed out are shared and read-only.** Reads return the cached dicts themselves, not
  copies, so a read costs a dict lookup. Callers must never mutate them; reconcilers parse a fresh
  pydantic model from the dict (or ``copy.deepcopy`` the part they change) and write through the
  API. Mutating a cached object corrupts every other reader's view.
* Before an object is cached, the store applies its ``transform`` (default:
  :func:`drop_managed_fields`, which removes ``metadata.managedFields``, about a third of a typical
  object's memory). The transform receives an object the store owns and may mutate it in place.
* Indices are multi-valued: an index function maps one object to a list of values, and
  :meth:`Indexer.by_index` returns every object that produced a value. The ``"namespace"`` index
  is always present.
* :meth:`Indexer.replace` swaps the whole content atomically and reports what changed; keys that
  vanished are reported as :class:`DeletedFinalStateUnknown` tombstones carrying the last known
  object.
"""

from __future__ import annotations

import builtins
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aimctrl.machinery.decoded import DecodeCache

__all__ = [
    "NAMESPACE_INDEX",
    "SHARED_STRING_MAX",
    "DeletedFinalStateUnknown",
    "IndexFunc",
    "Indexer",
    "KeyFunc",
    "Object",
    "ReplaceResult",
    "Transform",
    "compact",
    "drop_managed_fields",
    "namespace_index",
    "object_key",
    "share_strings",
    "split_key",
    "unwrap",
]

Object = dict[str, Any]
"""A Kubernetes object as decoded from JSON. ``Any`` because JSON values are heterogeneous."""

KeyFunc = Callable[[Object], str]
IndexFunc = Callable[[Object], list[str]]
Transform = Callable[[Object], Object]

_intern = sys.intern

NAMESPACE_INDEX = "namespace"


@dataclass(frozen=True, slots=True)
class DeletedFinalStateUnknown:
    """An object that was deleted while the watch was down; ``obj`` is its last known state."""

    key: str
    obj: Object | None


@dataclass(frozen=True, slots=True)
class ReplaceResult:
    """What :meth:`Indexer.replace` changed, in list order for ``added`` and ``updated``."""

    added: list[Object] = field(default_factory=list)
    updated: list[tuple[Object, Object]] = field(default_factory=list)
    deleted: list[DeletedFinalStateUnknown] = field(default_factory=list)


def object_key(obj: Object | DeletedFinalStateUnknown) -> str:
    """``"namespace/name"``, or ``"name"`` for cluster-scoped objects; tombstones give their key."""
    if isinstance(obj, DeletedFinalStateUnknown):
        return obj.key
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not name:
        raise ValueError("object has no metadata.name")
    namespace = meta.get("namespace")
    return f"{namespace}/{name}" if namespace else str(name)


def split_key(key: str) -> tuple[str, str]:
    """Split a store key into ``(namespace, name)``; namespace is ``""`` when cluster-scoped."""
    namespace, sep, name = key.partition("/")
    return (namespace, name) if sep else ("", namespace)


def unwrap(obj: Object | DeletedFinalStateUnknown) -> Object:
    """The object inside a tombstone (a metadata-only stub if it was unknown), or ``obj`` itself."""
    if not isinstance(obj, DeletedFinalStateUnknown):
        return obj
    if obj.obj is not None:
        return obj.obj
    namespace, name = split_key(obj.key)
    meta: dict[str, str] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"metadata": meta}


def namespace_index(obj: Object) -> list[str]:
    """The standard namespace index; cluster-scoped objects index under ``""``."""
    return [(obj.get("metadata") or {}).get("namespace") or ""]


def drop_managed_fields(obj: Object) -> Object:
    """Remove ``metadata.managedFields`` in place; controllers never read it from the cache."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return obj


#: Strings up to this length are shared (interned) by :func:`share_strings`; longer ones (messages,
#: annotations) are rarely repeated byte for byte.
SHARED_STRING_MAX = 64


def share_strings(value: Any) -> Any:
    """A copy of a decoded JSON tree whose keys and short strings are shared across objects.

    Every object decoded from its own watch event has its own copy of each key (``"metadata"``,
    ``"lastTransitionTime"``...) and of each repeated value (``"True"``, a reason, a label): about
    half of a cached object's memory. Interning (:func:`sys.intern`; such strings are freed with
    their last user) makes the cache hold one of each. Measured on auto-generated templates:
    7.8 KB → 3.4 KB per object decoded from watch events, 5.7 KB → 3.4 KB from list pages.
    """
    kind = type(value)
    if kind is dict:
        return _share_dict(value)
    if kind is list:
        return [share_strings(v) for v in value]
    if kind is str and len(value) <= SHARED_STRING_MAX:
        return _intern(value)
    return value


def _share_dict(value: dict[str, Any]) -> dict[str, Any]:
    # The hot loop of a cache sync: leaves are handled inline, without a call per value
    # (about 20% faster than recursing into every value).
    out: dict[str, Any] = {}
    for k, v in value.items():
        kind = type(v)
        if kind is str:
            out[_intern(k)] = _intern(v) if len(v) <= SHARED_STRING_MAX else v
        elif kind is dict:
            out[_intern(k)] = _share_dict(v)
        elif kind is list:
            out[_intern(k)] = [share_strings(x) for x in v]
        else:
            out[_intern(k)] = v
    return out


def compact(obj: Object) -> Object:
    """The default cache transform: :func:`drop_managed_fields`, then :func:`share_strings`."""
    result: Object = share_strings(drop_managed_fields(obj))
    return result


def _identity(obj: Object) -> Object:
    return obj


class Indexer:
    """The informer cache: a key → object map plus named multi-valued indices."""

    def __init__(
        self,
        *,
        key_func: KeyFunc = object_key,
        indexers: Mapping[str, IndexFunc] | None = None,
        transform: Transform | None = drop_managed_fields,
    ) -> None:
        self._lock = threading.Lock()
        self._key_func = key_func
        self._transform: Transform = transform if transform is not None else _identity
        self._items: dict[str, Object] = {}
        self._index_funcs: dict[str, IndexFunc] = {NAMESPACE_INDEX: namespace_index}
        # index name → indexed value → keys
        self._indices: dict[str, dict[str, set[str]]] = {NAMESPACE_INDEX: {}}
        self._resource_version = ""
        # Typed decodings of the cached objects (see :mod:`aimctrl.machinery.decoded`), here so
        # that every lister of this cache shares them.
        self.decoded = DecodeCache()
        if indexers:
            self.add_indexers(indexers)

    # -- configuration ------------------------------------------------------------------------

    def add_indexers(self, indexers: Mapping[str, IndexFunc]) -> None:
        """Register more indices; existing objects are indexed at once. Names must be new."""
        with self._lock:
            clash = set(indexers) & set(self._index_funcs)
            if clash:
                raise ValueError(f"indexer already registered: {sorted(clash)}")
            for name, fn in indexers.items():
                self._index_funcs[name] = fn
                self._indices[name] = {}
                for key, obj in self._items.items():
                    self._index_one(name, fn, key, obj)

    def key(self, obj: Object) -> str:
        return self._key_func(obj)

    # -- writes -------------------------------------------------------------------------------

    def add(self, obj: Object) -> Object | None:
        """Insert or replace ``obj`` (after the transform); return the previous object, if any."""
        return self.upsert(obj)[0]

    update = add

    def upsert(self, obj: Object) -> tuple[Object | None, Object]:
        """Like :meth:`add`, returning ``(previous, cached)`` where ``cached`` is transformed."""
        obj = self._transform(obj)
        key = self._key_func(obj)
        with self._lock:
            old = self._items.get(key)
            self._items[key] = obj
            self._reindex(key, old, obj)
        return old, obj

    def transform(self, obj: Object) -> Object:
        """Apply this store's transform (it may mutate ``obj``)."""
        return self._transform(obj)

    def resync(self) -> None:
        """A bare store has no listeners to replay to; informers override this."""

    def delete(self, obj: Object | DeletedFinalStateUnknown) -> Object | None:
        """Remove the object with ``obj``'s key; return what was cached, if anything."""
        key = obj.key if isinstance(obj, DeletedFinalStateUnknown) else self._key_func(obj)
        return self.delete_key(key)

    def delete_key(self, key: str) -> Object | None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._reindex(key, old, None)
        return old

    def replace(
        self, objs: Iterable[Object], resource_version: str, *, transformed: bool = False
    ) -> ReplaceResult:
        """Make the store hold exactly ``objs``; report additions, updates and vanished keys.

        ``transformed``: the caller already applied :meth:`transform` to every object.
        """
        fresh: dict[str, Object] = {}
        for obj in objs:
            if not transformed:
                obj = self._transform(obj)
            fresh[self._key_func(obj)] = obj
        result = ReplaceResult()
        with self._lock:
            old_items = self._items
            for key, obj in fresh.items():
                old = old_items.get(key)
                if old is None:
                    result.added.append(obj)
                else:
                    result.updated.append((old, obj))
            for key, old in old_items.items():
                if key not in fresh:
                    result.deleted.append(DeletedFinalStateUnknown(key, old))
            self._items = fresh
            self._indices = {name: {} for name in self._index_funcs}
            for name, fn in self._index_funcs.items():
                for key, obj in fresh.items():
                    self._index_one(name, fn, key, obj)
            self._resource_version = resource_version
        return result

    # -- reads (shared, read-only objects) ----------------------------------------------------

    def get(self, obj: Object) -> Object | None:
        return self.get_by_key(self._key_func(obj))

    def get_by_key(self, key: str) -> Object | None:
        with self._lock:
            return self._items.get(key)

    def list(self) -> builtins.list[Object]:
        with self._lock:
            return list(self._items.values())

    def list_keys(self) -> builtins.list[str]:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def by_index(self, index_name: str, value: str) -> builtins.list[Object]:
        """Every object whose index function for ``index_name`` produced ``value``."""
        with self._lock:
            keys = self._index(index_name).get(value, ())
            return [self._items[k] for k in keys]

    def index_keys(self, index_name: str, value: str) -> builtins.list[str]:
        with self._lock:
            return sorted(self._index(index_name).get(value, ()))

    def list_index_values(self, index_name: str) -> builtins.list[str]:
        with self._lock:
            return sorted(self._index(index_name))

    def list_index_names(self) -> builtins.list[str]:
        with self._lock:
            return sorted(self._index_funcs)

    def replaced_resource_version(self) -> str:
        """The resource version passed to the last :meth:`replace` (the last full list)."""
        with self._lock:
            return self._resource_version

    # -- internals (lock held) ----------------------------------------------------------------

    def _index(self, index_name: str) -> dict[str, set[str]]:
        try:
            return self._indices[index_name]
        except KeyError:
            raise KeyError(f"no index named {index_name!r}") from None

    def _index_one(self, name: str, fn: IndexFunc, key: str, obj: Object) -> None:
        index = self._indices[name]
        for value in fn(obj):
            index.setdefault(value, set()).add(key)

    def _reindex(self, key: str, old: Object | None, new: Object | None) -> None:
        for name, fn in self._index_funcs.items():
            index = self._indices[name]
            old_values = set(fn(old)) if old is not None else set()
            new_values = set(fn(new)) if new is not None else set()
            for value in old_values - new_values:
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]
            for value in new_values - old_values:
                index.setdefault(value, set()).add(key)
