"""Decoded forms of cached objects, shared between reconciles.

Every reconcile turns cached dicts into typed API objects (``AIMModel.model_validate``). The same
version of an object is decoded many times: a model's four templates on every reconcile of the
model, the model on every reconcile of each template. :class:`DecodeCache` keeps the result by
``(decoder, uid, resourceVersion)``, so each version is decoded once while it is in use.

Guarantees:

* a hit returns the very object decoded before: callers treat it as read-only, exactly like the
  cached dict it came from (copy before changing — ``model_copy``, or fresh lists);
* a different ``resourceVersion`` or ``uid`` is a different entry, so an update is never
  answered with an older decoding; objects without both are decoded every time;
* bounded: at most ``max_entries`` (least recently used dropped first);
* with ``verify`` (environment ``AIMCTRL_VERIFY_DECODED=1``, set by the test suite) every hit is
  compared with a fresh decoding, and a reader that changed a shared object fails loudly.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from aimctrl.machinery.store import Object

__all__ = ["VERIFY_ENV", "DecodeCache", "SharedObjectMutatedError"]

VERIFY_ENV = "AIMCTRL_VERIFY_DECODED"

T = TypeVar("T")


class SharedObjectMutatedError(AssertionError):
    """A decoded object handed out by a :class:`DecodeCache` was changed by its reader."""


class DecodeCache:
    """``decode(obj)`` memoised by ``(decode, uid, resourceVersion)``; thread-safe."""

    def __init__(self, max_entries: int = 2048, *, verify: bool | None = None) -> None:
        self._max = max_entries
        self._verify = os.environ.get(VERIFY_ENV) == "1" if verify is None else verify
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, obj: Object, decode: Callable[[Object], T]) -> T:
        meta = obj.get("metadata") or {}
        uid, version = meta.get("uid"), meta.get("resourceVersion")
        if not uid or not version:
            return decode(obj)
        key = (decode, uid, version)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
        if hit is not None:
            if self._verify and hit != decode(obj):
                raise SharedObjectMutatedError(
                    f"a reader changed the shared decoding of {meta.get('namespace') or ''}/"
                    f"{meta.get('name')} (resourceVersion {version}); copy before changing"
                )
            return hit  # type: ignore[no-any-return]
        value = decode(obj)
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return value

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
