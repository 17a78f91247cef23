"""DecodeCache: one decoding per object version, shared, bounded, and mutation-checked."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from aimctrl.machinery.decoded import DecodeCache, SharedObjectMutatedError


class Thing(BaseModel):
    metadata: dict[str, Any]
    labels: list[str] = []


def obj(name: str, rv: str | None, uid: str | None = "u1", **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if rv is not None:
        meta["resourceVersion"] = rv
    if uid is not None:
        meta["uid"] = uid
    return {"metadata": meta, **extra}


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, o: dict[str, Any]) -> Thing:
        self.calls += 1
        return Thing.model_validate(o)


def test_a_version_is_decoded_once_and_shared() -> None:
    cache, decode = DecodeCache(verify=False), Counting()
    first = cache.get(obj("a", "1"), decode)
    again = cache.get(obj("a", "1"), decode)
    assert again is first
    assert decode.calls == 1
    assert (cache.hits, cache.misses) == (1, 1)


def test_a_new_version_or_uid_is_decoded_afresh() -> None:
    cache, decode = DecodeCache(verify=False), Counting()
    v1 = cache.get(obj("a", "1", labels=["x"]), decode)
    v2 = cache.get(obj("a", "2", labels=["y"]), decode)
    recreated = cache.get(obj("a", "1", uid="u2", labels=["z"]), decode)
    assert (v1.labels, v2.labels, recreated.labels) == (["x"], ["y"], ["z"])
    assert decode.calls == 3


def test_objects_without_uid_or_version_are_never_cached() -> None:
    cache, decode = DecodeCache(verify=False), Counting()
    for _ in range(2):
        cache.get(obj("a", None), decode)
        cache.get(obj("a", "1", uid=None), decode)
    assert decode.calls == 4
    assert len(cache) == 0


def test_different_decoders_do_not_share_entries() -> None:
    cache, one, other = DecodeCache(verify=False), Counting(), Counting()
    cache.get(obj("a", "1"), one)
    cache.get(obj("a", "1"), other)
    assert (one.calls, other.calls) == (1, 1)


def test_bounded_least_recently_used_first() -> None:
    cache, decode = DecodeCache(max_entries=2, verify=False), Counting()
    cache.get(obj("a", "1", uid="a"), decode)
    cache.get(obj("b", "1", uid="b"), decode)
    cache.get(obj("a", "1", uid="a"), decode)  # a is now the most recent
    cache.get(obj("c", "1", uid="c"), decode)  # evicts b
    assert len(cache) == 2
    calls = decode.calls
    cache.get(obj("a", "1", uid="a"), decode)
    assert decode.calls == calls
    cache.get(obj("b", "1", uid="b"), decode)
    assert decode.calls == calls + 1


def test_verify_catches_a_reader_that_changed_the_shared_object() -> None:
    cache = DecodeCache(verify=True)
    shared = cache.get(obj("a", "1", labels=["x"]), Thing.model_validate)
    assert cache.get(obj("a", "1", labels=["x"]), Thing.model_validate) is shared
    shared.labels.append("changed by a careless reader")
    with pytest.raises(SharedObjectMutatedError, match="copy before changing"):
        cache.get(obj("a", "1", labels=["x"]), Thing.model_validate)
