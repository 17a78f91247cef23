"""The local control plane is real: CRDs, custom objects, watches, Jobs on KWOK nodes, GC.

These tests check the test harness itself, so that every later integration test stands on
components that behave like a cluster's.
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest
from kubernetes import client, config

from aimctrl.testing.controlplane import DISCOVERY_POD_LABEL, GPU_NODE, ControlPlane
from aimctrl.testing.fleet import TEST_FLEET
from aimctrl.testing.helpers import Kubectl, eventually

pytestmark = pytest.mark.integration

GROUP = "harness.aimctrl.test"


def _widget_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer", "minimum": 1}},
                                },
                                "status": {
                                    "type": "object",
                                    "properties": {"phase": {"type": "string"}},
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def api(kubeconfig_path: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=kubeconfig_path)


def test_nodes_are_ready_and_form_the_mixed_amd_fleet(kubectl: Kubectl) -> None:
    nodes = kubectl.json("get", "nodes")["items"]
    by_name = {n["metadata"]["name"]: n for n in nodes}
    assert sorted(by_name) == sorted(name for name, *_ in TEST_FLEET)
    gpu = by_name[GPU_NODE]
    assert gpu["metadata"]["labels"]["amd.com/gpu.device-id"] == "74a1"
    assert gpu["metadata"]["labels"]["amd.com/gpu.product-name"] == "AMD_Instinct_MI300X_OAM"
    assert gpu["status"]["allocatable"]["amd.com/gpu"] == "8"
    beta = by_name["kwok-mi325x-beta-0"]["metadata"]["labels"]
    assert beta["beta.amd.com/gpu.device-id"] == "74a5"
    assert not any(k.startswith("amd.com/gpu.") for k in beta)
    counted = by_name["kwok-mi210-count-0"]["metadata"]["labels"]
    assert counted["amd.com/gpu.device-id.740f"] == "4"
    assert "amd.com/gpu" not in by_name["kwok-cpu-0"]["status"]["allocatable"]
    for node in nodes:
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready, node["metadata"]["name"]
        assert ready[0]["status"] == "True", node["metadata"]["name"]


def test_custom_object_create_list_watch_and_status_update(
    kubectl: Kubectl, api: client.ApiClient, namespace: str
) -> None:
    kubectl.apply(_widget_crd())
    kubectl("wait", "--for=condition=Established", f"crd/widgets.{GROUP}", "--timeout=60s")
    co = client.CustomObjectsApi(api)

    listed = co.list_namespaced_custom_object(GROUP, "v1", namespace, "widgets")
    start_rv = listed["metadata"]["resourceVersion"]
    seen: list[tuple[str, str, dict[str, Any]]] = []
    done = threading.Event()

    def watch() -> None:
        # Raw streamed watch: one JSON event per line, from the list's resourceVersion.
        resp = co.list_namespaced_custom_object(
            GROUP,
            "v1",
            namespace,
            "widgets",
            watch=True,
            resource_version=start_rv,
            allow_watch_bookmarks=True,
            timeout_seconds=30,
            _preload_content=False,
        )
        for line in resp:
            event = json.loads(line)
            if event["type"] == "BOOKMARK":
                continue
            obj = event["object"]
            seen.append((event["type"], obj["metadata"]["name"], obj.get("status", {})))
            if obj.get("status", {}).get("phase") == "Ready":
                done.set()
                resp.close()
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()

    body = {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": "w1"},
        "spec": {"size": 3},
    }
    created = co.create_namespaced_custom_object(GROUP, "v1", namespace, "widgets", body)
    assert created["metadata"]["uid"]
    names = [
        o["metadata"]["name"]
        for o in co.list_namespaced_custom_object(GROUP, "v1", namespace, "widgets")["items"]
    ]
    assert names == ["w1"]

    # The status subresource ignores spec changes and the main resource ignores status.
    co.patch_namespaced_custom_object_status(
        GROUP,
        "v1",
        namespace,
        "widgets",
        "w1",
        {"status": {"phase": "Ready"}, "spec": {"size": 99}},
    )
    got = co.get_namespaced_custom_object(GROUP, "v1", namespace, "widgets", "w1")
    assert got["status"] == {"phase": "Ready"}
    assert got["spec"]["size"] == 3

    assert done.wait(30), f"watch did not see the status update: {seen}"
    assert seen[0][:2] == ("ADDED", "w1")
    assert seen[-1] == ("MODIFIED", "w1", {"phase": "Ready"})


def test_schema_validation_rejects_with_field_path(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(_widget_crd())
    kubectl("wait", "--for=condition=Established", f"crd/widgets.{GROUP}", "--timeout=60s")
    bad = {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": "bad", "namespace": namespace},
        "spec": {"size": 0},
    }
    res = kubectl.run("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert res.returncode != 0
    assert "spec.size" in res.stderr


def _job(
    name: str, namespace: str, owner: dict[str, Any], labels: dict[str, str]
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": owner["metadata"]["name"],
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "example.invalid/none:1"}],
                },
            },
        },
    }


def test_job_completes_on_kwok_node_and_is_garbage_collected_with_owner(
    kubectl: Kubectl, namespace: str
) -> None:
    kubectl("create", "configmap", "owner", "-n", namespace)
    owner = kubectl.json("get", "configmap", "owner", "-n", namespace)
    kubectl.apply(_job("work", namespace, owner, {"app": "work"}))

    def complete() -> bool:
        job = kubectl.json("get", "job", "work", "-n", namespace)
        conds = {c["type"]: c["status"] for c in job.get("status", {}).get("conditions", [])}
        return conds.get("Complete") == "True"

    eventually(complete, timeout=90, what="Job Complete")
    pods = kubectl.json("get", "pods", "-n", namespace, "-l", "app=work")["items"]
    assert len(pods) == 1
    assert pods[0]["spec"]["nodeName"].startswith("kwok-")
    assert pods[0]["status"]["phase"] == "Succeeded"

    kubectl("delete", "configmap", "owner", "-n", namespace)

    def collected() -> bool:
        jobs = kubectl.json("get", "jobs", "-n", namespace)["items"]
        pods = kubectl.json("get", "pods", "-n", namespace)["items"]
        return not jobs and not pods

    eventually(collected, timeout=90, what="Job and pod garbage-collected")


def test_kwok_leaves_discovery_pods_to_the_harness_runner(kubectl: Kubectl, namespace: str) -> None:
    kubectl("create", "configmap", "owner", "-n", namespace)
    owner = kubectl.json("get", "configmap", "owner", "-n", namespace)
    kubectl.apply(_job("disc", namespace, owner, {DISCOVERY_POD_LABEL: "disc", "app": "disc"}))
    kubectl("create", "configmap", "owner2", "-n", namespace)
    owner2 = kubectl.json("get", "configmap", "owner2", "-n", namespace)
    kubectl.apply(_job("plain", namespace, owner2, {"app": "plain"}))

    def plain_done() -> bool:
        pods = kubectl.json("get", "pods", "-n", namespace, "-l", "app=plain")["items"]
        return bool(pods) and pods[0]["status"].get("phase") == "Succeeded"

    # Once an ordinary Job pod created after it has finished, KWOK has had its chance.
    eventually(plain_done, timeout=90, what="plain pod Succeeded")
    pods = kubectl.json("get", "pods", "-n", namespace, "-l", "app=disc")["items"]
    assert len(pods) == 1
    assert pods[0]["spec"].get("nodeName"), "the scheduler still binds discovery pods"
    assert pods[0]["status"]["phase"] == "Pending"


def test_second_user_is_not_an_admin(control_plane: ControlPlane) -> None:
    path = control_plane.add_user(f"nobody-{uuid.uuid4().hex[:6]}")
    res = Kubectl(str(path)).run("get", "nodes", check=False)
    assert res.returncode != 0
    assert "forbidden" in res.stderr.lower()
