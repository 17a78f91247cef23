"""Listers answer from the cache by name, namespace, labels and index."""

from __future__ import annotations

from aimctrl.machinery.lister import Lister, labels_match
from aimctrl.machinery.store import Indexer, Object
from aimctrl.testing.fakes import obj


def names(objs: list[Object]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in objs)


def make() -> Lister:
    store = Indexer(indexers={"image": lambda o: [o.get("spec", {}).get("image", "")]})
    store.add(obj("a", "1", namespace="one", labels={"app": "x", "tier": "web"}))
    store.add(obj("b", "1", namespace="one", labels={"app": "y"}))
    store.add(obj("c", "1", namespace="two", labels={"app": "x"}))
    cluster = {"metadata": {"name": "global"}, "spec": {"image": "img:1"}}
    store.add(cluster)
    return Lister(store)


def test_get_by_name_and_namespace_or_cluster_scoped() -> None:
    lister = make()
    got = lister.get("a", "one")
    assert got is not None
    assert got["metadata"]["namespace"] == "one"
    assert lister.get("a", "two") is None
    assert lister.get("global") is not None


def test_list_filters_by_namespace_and_label_equality() -> None:
    lister = make()
    assert names(lister.list()) == ["a", "b", "c", "global"]
    assert names(lister.list("one")) == ["a", "b"]
    assert names(lister.list(selector={"app": "x"})) == ["a", "c"]
    assert names(lister.list("one", {"app": "x", "tier": "web"})) == ["a"]
    assert lister.list("one", {"app": "z"}) == []


def test_namespaced_view_and_by_index() -> None:
    lister = make()
    one = lister.namespaced("one")
    assert one.get("b") is not None
    assert one.get("c") is None
    assert names(one.list({"app": "y"})) == ["b"]
    assert names(lister.by_index("image", "img:1")) == ["global"]


def test_labels_match_with_empty_selector_matches_everything() -> None:
    assert labels_match({"metadata": {}}, None)
    assert labels_match({"metadata": {}}, {})
    assert not labels_match({"metadata": {}}, {"a": "b"})
