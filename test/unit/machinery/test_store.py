"""The indexer: keys, indices, atomic replace with tombstones, transform, shared reads."""

from __future__ import annotations

import pytest

from aimctrl.machinery.store import (
    NAMESPACE_INDEX,
    DeletedFinalStateUnknown,
    Indexer,
    Object,
    drop_managed_fields,
    object_key,
    split_key,
    unwrap,
)
from aimctrl.testing.fakes import obj


def by_owner(o: Object) -> list[str]:
    return [ref["uid"] for ref in o["metadata"].get("ownerReferences", [])]


def owned(name: str, *uids: str, rv: str = "1") -> Object:
    return obj(name, rv, ownerReferences=[{"uid": u} for u in uids])


def test_keys_are_namespace_slash_name_or_name_for_cluster_scoped() -> None:
    assert object_key(obj("a", "1", namespace="ns")) == "ns/a"
    assert object_key({"metadata": {"name": "cluster-thing"}}) == "cluster-thing"
    assert split_key("ns/a") == ("ns", "a")
    assert split_key("cluster-thing") == ("", "cluster-thing")
    assert object_key(DeletedFinalStateUnknown("ns/x", None)) == "ns/x"


def test_reads_return_the_cached_object_without_copying() -> None:
    store = Indexer()
    store.add(obj("a", "1"))
    first = store.get_by_key("ns/a")
    assert first is not None
    assert store.get_by_key("ns/a") is first
    assert store.list()[0] is first


def test_default_transform_drops_managed_fields_before_caching() -> None:
    store = Indexer()
    store.add(obj("a", "1", managedFields=[{"manager": "kubectl"}], labels={"x": "y"}))
    cached = store.get_by_key("ns/a")
    assert cached is not None
    assert "managedFields" not in cached["metadata"]
    assert cached["metadata"]["labels"] == {"x": "y"}
    assert drop_managed_fields({"spec": {}}) == {"spec": {}}


def test_custom_transform_replaces_the_default() -> None:
    store = Indexer(transform=None)
    store.add(obj("a", "1", managedFields=[{"manager": "kubectl"}]))
    assert "managedFields" in store.get_by_key("ns/a")["metadata"]  # type: ignore[index]


def test_namespace_index_tracks_adds_moves_and_deletes() -> None:
    store = Indexer()
    store.add(obj("a", "1", namespace="one"))
    store.add(obj("b", "1", namespace="two"))
    store.add({"metadata": {"name": "c"}})
    assert [o["metadata"]["name"] for o in store.by_index(NAMESPACE_INDEX, "one")] == ["a"]
    assert [o["metadata"]["name"] for o in store.by_index(NAMESPACE_INDEX, "")] == ["c"]
    store.delete(obj("a", "2", namespace="one"))
    assert store.by_index(NAMESPACE_INDEX, "one") == []
    assert store.list_index_values(NAMESPACE_INDEX) == ["", "two"]


def test_multi_valued_index_is_updated_when_values_change() -> None:
    store = Indexer(indexers={"owner": by_owner})
    store.add(owned("a", "u1", "u2"))
    store.add(owned("b", "u2"))
    assert store.index_keys("owner", "u2") == ["ns/a", "ns/b"]
    store.update(owned("a", "u3", rv="2"))
    assert store.index_keys("owner", "u1") == []
    assert store.index_keys("owner", "u2") == ["ns/b"]
    assert store.index_keys("owner", "u3") == ["ns/a"]
    store.delete_key("ns/b")
    assert store.list_index_values("owner") == ["u3"]


def test_add_indexers_indexes_existing_objects_and_rejects_duplicates() -> None:
    store = Indexer()
    store.add(owned("a", "u1"))
    store.add_indexers({"owner": by_owner})
    assert [o["metadata"]["name"] for o in store.by_index("owner", "u1")] == ["a"]
    with pytest.raises(ValueError, match="already registered"):
        store.add_indexers({"owner": by_owner})
    with pytest.raises(KeyError):
        store.by_index("missing", "x")


def test_replace_reports_added_updated_and_tombstones_for_vanished_keys() -> None:
    store = Indexer(indexers={"owner": by_owner})
    old_a = obj("a", "1")
    store.add(old_a)
    store.add(owned("gone", "u1"))
    result = store.replace([obj("a", "5"), obj("new", "6")], "9")

    assert [o["metadata"]["name"] for o in result.added] == ["new"]
    assert [
        (old["metadata"]["resourceVersion"], new["metadata"]["resourceVersion"])
        for old, new in result.updated
    ] == [("1", "5")]
    assert len(result.deleted) == 1
    tomb = result.deleted[0]
    assert tomb.key == "ns/gone"
    assert tomb.obj is not None
    assert tomb.obj["metadata"]["name"] == "gone"
    assert sorted(store.list_keys()) == ["ns/a", "ns/new"]
    assert store.by_index("owner", "u1") == []
    assert store.replaced_resource_version() == "9"


def test_delete_returns_what_was_cached_and_ignores_unknown_keys() -> None:
    store = Indexer()
    store.add(obj("a", "1"))
    removed = store.delete(obj("a", "2"))
    assert removed is not None
    assert removed["metadata"]["resourceVersion"] == "1"
    assert store.delete(obj("a", "3")) is None
    assert len(store) == 0


def test_unwrap_gives_last_state_or_a_metadata_stub() -> None:
    last = obj("a", "1")
    assert unwrap(last) is last
    assert unwrap(DeletedFinalStateUnknown("ns/a", last)) is last
    assert unwrap(DeletedFinalStateUnknown("ns/a", None)) == {
        "metadata": {"name": "a", "namespace": "ns"}
    }
    assert unwrap(DeletedFinalStateUnknown("c", None)) == {"metadata": {"name": "c"}}


def test_compact_shares_keys_and_short_strings_between_separately_decoded_objects() -> None:
    import json

    from aimctrl.machinery.store import SHARED_STRING_MAX, compact

    text = json.dumps(
        {
            "metadata": {"name": "a", "managedFields": [{"manager": "x"}]},
            "status": {"conditions": [{"status": "True", "count": 3, "ok": True}]},
            "long": "m" * (SHARED_STRING_MAX + 1),
        }
    )
    first, second = compact(json.loads(text)), compact(json.loads(text))
    assert (
        first
        == second
        == {
            "metadata": {"name": "a"},
            "status": {"conditions": [{"status": "True", "count": 3, "ok": True}]},
            "long": "m" * (SHARED_STRING_MAX + 1),
        }
    )
    (k1,), (k2,) = first["metadata"].keys(), second["metadata"].keys()
    assert k1 is k2
    c1, c2 = first["status"]["conditions"][0], second["status"]["conditions"][0]
    assert c1["status"] is c2["status"]
    assert first["long"] is not second["long"]  # long strings are copied as they are
