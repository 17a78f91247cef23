"""The informer against a real kube-apiserver and etcd: sync, restart, 410 and tombstones.

Uses ConfigMaps with a per-test label, so that the numbers are exact and tests do not see each
other's objects. The control plane is shared by the session; the apiserver-restart and compaction
tests restore it before they finish.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from aimctrl.kube.client import KubeClient
from aimctrl.kube.resources import CONFIG_MAP, Resource
from aimctrl.machinery.informer import SharedInformer
from aimctrl.machinery.store import DeletedFinalStateUnknown
from aimctrl.testing.controlplane import ControlPlane
from aimctrl.testing.helpers import Kubectl, eventually

pytestmark = pytest.mark.integration

GROUP = "informer.aimctrl.test"
GADGET = Resource(GROUP, "v1", "gadgets", "Gadget", True)


class Recorder:
    """An event handler that records what it was told, thread-safely."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.adds: list[str] = []
        self.updates: list[str] = []
        self.deletes: list[tuple[str, bool]] = []

    def on_add(self, obj: dict[str, Any], is_initial_list: bool) -> None:
        with self.lock:
            self.adds.append(obj["metadata"]["name"])

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        with self.lock:
            self.updates.append(new["metadata"]["name"])

    def on_delete(self, obj: dict[str, Any] | DeletedFinalStateUnknown) -> None:
        with self.lock:
            if isinstance(obj, DeletedFinalStateUnknown):
                self.deletes.append((obj.key.rsplit("/", 1)[-1], True))
            else:
                self.deletes.append((obj["metadata"]["name"], False))


@pytest.fixture(scope="module")
def kube(kubeconfig_path: str) -> Iterator[KubeClient]:
    client = KubeClient.from_kubeconfig(kubeconfig_path)
    yield client
    client.close()


@pytest.fixture(scope="module")
def gadget_crd(kubectl: Kubectl) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    kubectl.apply(crd)
    kubectl("wait", "--for=condition=Established", f"crd/gadgets.{GROUP}", "--timeout=60s")


def _run(informer: SharedInformer) -> threading.Event:
    stop = threading.Event()
    informer.start(stop)
    return stop


def _cm(name: str, namespace: str, label: str, data: str = "v") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"t": label}},
        "data": {"k": data},
    }


def test_initial_sync_of_1000_custom_objects(
    kube: KubeClient, gadget_crd: None, namespace: str
) -> None:
    for i in range(1000):
        kube.create(
            GADGET,
            {
                "apiVersion": f"{GROUP}/v1",
                "kind": "Gadget",
                "metadata": {"name": f"g-{i:04d}", "namespace": namespace},
                "spec": {"i": i},
            },
            namespace=namespace,
        )
    informer = SharedInformer(
        kube.list_watcher(GADGET, namespace=namespace), name="gadgets", page_size=100
    )
    rec = Recorder()
    reg = informer.add_event_handler(rec)
    t0 = time.monotonic()
    stop = _run(informer)
    try:
        eventually(reg.has_synced, timeout=60, what="handler synced")
        elapsed = time.monotonic() - t0
        assert informer.has_synced()
        assert len(informer.lister().list(namespace)) == 1000
        assert sorted(rec.adds) == [f"g-{i:04d}" for i in range(1000)]
        got = informer.lister().get("g-0500", namespace)
        assert got is not None
        assert got["spec"] == {"i": 500}
        assert "managedFields" not in got["metadata"]
        print(f"initial sync of 1000 objects (page size 100): {elapsed:.2f}s")
    finally:
        stop.set()


def test_watch_resumes_across_apiserver_restart_without_missing_changes(
    kube: KubeClient, control_plane: ControlPlane, namespace: str
) -> None:
    label = uuid.uuid4().hex[:8]
    for i in range(5):
        kube.create(CONFIG_MAP, _cm(f"before-{i}", namespace, label), namespace=namespace)
    informer = SharedInformer(
        kube.list_watcher(CONFIG_MAP, namespace=namespace, label_selector=f"t={label}"),
        name="cm-restart",
    )
    rec = Recorder()
    informer.add_event_handler(rec)
    stop = _run(informer)
    try:
        eventually(informer.has_synced, timeout=30, what="synced")
        control_plane.restart_apiserver()
        # Changes made after the restart, while the reflector is reconnecting.
        kube.create(CONFIG_MAP, _cm("after-0", namespace, label), namespace=namespace)
        kube.patch(CONFIG_MAP, "before-0", {"data": {"k": "changed"}}, namespace=namespace)
        kube.delete(CONFIG_MAP, "before-1", namespace=namespace)

        def converged() -> bool:
            names = {o["metadata"]["name"] for o in informer.lister().list(namespace)}
            b0 = informer.lister().get("before-0", namespace)
            return (
                names == {"before-0", "before-2", "before-3", "before-4", "after-0"}
                and b0 is not None
                and b0["data"]["k"] == "changed"
            )

        eventually(converged, timeout=90, what="cache converged after apiserver restart")

        def delivered() -> bool:
            # Handlers run on the dispatch thread, a moment after the cache changed.
            with rec.lock:
                return (
                    "after-0" in rec.adds
                    and "before-0" in rec.updates
                    and "before-1" in {name for name, _ in rec.deletes}
                )

        eventually(delivered, timeout=10, what="add, update and delete delivered to the handler")
    finally:
        stop.set()


def test_expired_resource_version_relists_with_tombstones(
    kube: KubeClient, control_plane: ControlPlane, namespace: str
) -> None:
    """Objects deleted while the watch was gone, after compaction, surface as tombstones."""
    label = uuid.uuid4().hex[:8]
    for i in range(4):
        kube.create(CONFIG_MAP, _cm(f"c-{i}", namespace, label), namespace=namespace)
    informer = SharedInformer(
        kube.list_watcher(CONFIG_MAP, namespace=namespace, label_selector=f"t={label}"),
        name="cm-compact",
    )
    rec = Recorder()
    informer.add_event_handler(rec)
    stop = _run(informer)
    try:
        eventually(informer.has_synced, timeout=30, what="synced")
        synced_rv = informer.last_sync_resource_version()
        # Take the apiserver away, delete two objects straight from etcd and compact past the
        # informer's resourceVersion: when the apiserver is back, resuming from that RV is 410
        # Gone, and only a relist shows that c-0 and c-1 have vanished.
        control_plane.stop_apiserver()
        control_plane.etcd_delete(f"/registry/configmaps/{namespace}/c-0")
        control_plane.etcd_delete(f"/registry/configmaps/{namespace}/c-1")
        control_plane.etcd_compact()
        control_plane.start_apiserver()

        def converged() -> bool:
            names = {o["metadata"]["name"] for o in informer.lister().list(namespace)}
            return names == {"c-2", "c-3"}

        eventually(converged, timeout=120, what="cache converged after compaction")

        def tombstones() -> set[str]:
            with rec.lock:
                return {name for name, tomb in rec.deletes if tomb}

        eventually(lambda: tombstones() == {"c-0", "c-1"}, timeout=10, what="tombstones")
        with rec.lock:
            assert {name for name, _ in rec.deletes} == {"c-0", "c-1"}
        assert informer.last_sync_resource_version() != synced_rv
    finally:
        stop.set()
