"""Event handlers map objects to Requests, unwrap tombstones and honour predicates."""

from __future__ import annotations

from aimctrl.machinery.handler import (
    EnqueueRequestForObject,
    EnqueueRequestForOwner,
    EnqueueRequestsFromMapFunc,
    api_group,
)
from aimctrl.machinery.predicate import GenerationChanged
from aimctrl.machinery.reconcile import Request
from aimctrl.machinery.store import DeletedFinalStateUnknown, Object
from aimctrl.testing.fakes import obj


class ListQueue:
    def __init__(self) -> None:
        self.items: list[Request] = []

    def add(self, item: Request, /) -> None:
        self.items.append(item)


def child(name: str, *refs: dict[str, object], namespace: str = "ns") -> Object:
    return obj(name, "1", namespace=namespace, ownerReferences=list(refs))


def ref(
    kind: str, name: str, *, api_version: str = "aim.silogen.ai/v1alpha1", controller: bool = True
) -> dict[str, object]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": f"uid-{name}",
        "controller": controller,
    }


def test_enqueue_for_object_uses_its_own_key_once_per_event() -> None:
    q = ListQueue()
    h = EnqueueRequestForObject(q)
    h.on_add(obj("a", "1"), True)
    h.on_update(obj("a", "1"), obj("a", "2"))
    h.on_delete({"metadata": {"name": "cluster-wide"}})
    assert q.items == [Request("ns", "a"), Request("ns", "a"), Request("", "cluster-wide")]


def test_tombstones_are_unwrapped_even_without_a_last_state() -> None:
    q = ListQueue()
    h = EnqueueRequestForObject(q)
    h.on_delete(DeletedFinalStateUnknown("ns/a", obj("a", "1")))
    h.on_delete(DeletedFinalStateUnknown("ns/b", None))
    assert q.items == [Request("ns", "a"), Request("ns", "b")]


def test_owner_handler_enqueues_the_controller_owner_in_the_object_namespace() -> None:
    q = ListQueue()
    h = EnqueueRequestForOwner(
        q, owner_api_version="aim.silogen.ai/v1alpha1", owner_kind="AIMService"
    )
    h.on_add(
        child("deploy", ref("AIMService", "svc"), ref("AIMService", "other", controller=False)),
        False,
    )
    h.on_add(child("unrelated", ref("ReplicaSet", "rs", api_version="apps/v1")), False)
    assert q.items == [Request("ns", "svc")]


def test_owner_handler_matches_group_not_version() -> None:
    q = ListQueue()
    h = EnqueueRequestForOwner(q, owner_api_version="aim.silogen.ai/v1", owner_kind="AIMService")
    h.on_add(child("d", ref("AIMService", "svc", api_version="aim.silogen.ai/v1alpha1")), False)
    h.on_add(child("e", ref("AIMService", "x", api_version="other.io/v1alpha1")), False)
    assert q.items == [Request("ns", "svc")]


def test_cluster_scoped_owner_of_namespaced_child_gets_empty_namespace() -> None:
    q = ListQueue()
    h = EnqueueRequestForOwner(
        q,
        owner_api_version="aim.silogen.ai/v1alpha1",
        owner_kind="AIMClusterModel",
        owner_namespaced=False,
    )
    h.on_delete(
        DeletedFinalStateUnknown(
            "jobs-ns/job", child("job", ref("AIMClusterModel", "llama"), namespace="jobs-ns")
        )
    )
    assert q.items == [Request("", "llama")]


def test_owner_handler_enqueues_old_and_new_owners_on_update_and_all_owners_if_asked() -> None:
    q = ListQueue()
    h = EnqueueRequestForOwner(
        q,
        owner_api_version="aim.silogen.ai/v1alpha1",
        owner_kind="AIMService",
        only_controller=False,
    )
    old = child("d", ref("AIMService", "first"))
    new = child("d", ref("AIMService", "second", controller=False))
    h.on_update(old, new)
    assert q.items == [Request("ns", "first"), Request("ns", "second")]


def test_map_func_handler_dedupes_requests_of_one_event() -> None:
    q = ListQueue()

    def fan_out(o: Object) -> list[Request]:
        return [Request("ns", "x"), Request("ns", o["metadata"]["resourceVersion"])]

    h = EnqueueRequestsFromMapFunc(q, fan_out)
    h.on_update(obj("a", "1"), obj("a", "2"))
    assert q.items == [Request("ns", "x"), Request("ns", "1"), Request("ns", "2")]


def test_predicates_filter_before_mapping() -> None:
    q = ListQueue()
    h = EnqueueRequestForObject(q, predicates=[GenerationChanged()])
    h.on_update(obj("a", "1", generation=1), obj("a", "2", generation=1))
    assert q.items == []
    h.on_update(obj("a", "2", generation=1), obj("a", "3", generation=2))
    assert q.items == [Request("ns", "a")]


def test_api_group_of_core_and_named_groups() -> None:
    assert api_group("v1") == ""
    assert api_group("apps/v1") == "apps"
