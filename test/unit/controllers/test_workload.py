"""Workload builders: the Deployment and Service of an AIMService, and Deployment readiness."""

from __future__ import annotations

from typing import Any

from aimctrl.controllers.workload import (
    ANNOTATION_APPLIED_HASH,
    LABEL_SERVICE,
    WorkloadInputs,
    applied_hash,
    cluster_ip_service,
    deployment,
    deployment_state,
    merge_env,
    profile_env,
    with_applied_hash,
)
from aimctrl.resolve.gpus import Inventory, ModelInventory, node_affinity


def inputs(**kw: Any) -> WorkloadInputs:
    base: dict[str, Any] = {
        "name": "svc",
        "namespace": "team",
        "owner_uid": "uid-1",
        "image": "r/llama:1",
        "replicas": 2,
        "resources": {"limits": {"amd.com/gpu": "1"}, "requests": {"amd.com/gpu": "1"}},
    }
    return WorkloadInputs(**(base | kw))


def test_deployment_is_owned_by_the_service_and_selects_its_pods() -> None:
    dep = deployment(inputs())
    meta = dep["metadata"]
    assert (meta["name"], meta["namespace"]) == ("svc", "team")
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "aim.silogen.ai/v1alpha1",
            "kind": "AIMService",
            "name": "svc",
            "uid": "uid-1",
            "controller": True,
        }
    ]
    assert dep["spec"]["selector"] == {"matchLabels": {LABEL_SERVICE: "svc"}}
    assert dep["spec"]["template"]["metadata"]["labels"][LABEL_SERVICE] == "svc"
    assert dep["spec"]["replicas"] == 2


def test_container_runs_the_image_with_resources_port_and_hardening() -> None:
    pod = deployment(inputs())["spec"]["template"]["spec"]
    [c] = pod["containers"]
    assert c["image"] == "r/llama:1"
    assert c["resources"] == {"limits": {"amd.com/gpu": "1"}, "requests": {"amd.com/gpu": "1"}}
    assert c["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert "livenessProbe" not in c
    assert "affinity" not in pod
    assert "serviceAccountName" not in pod
    assert "imagePullSecrets" not in pod


def test_gpu_affinity_goes_into_the_pod_spec_as_given() -> None:
    fleet = Inventory({"MI300X": ModelInventory("MI300X", 2, 8, 16, ("AMD_Instinct_MI300X_OAM",))})
    affinity = node_affinity("MI300X", fleet)
    assert affinity is not None
    pod = deployment(inputs(gpu_model="MI300X", affinity=affinity))["spec"]["template"]["spec"]
    assert pod["affinity"] == affinity
    assert pod["affinity"] is not affinity  # a copy: the builder never shares its inputs


def test_credentials_and_env_are_set_when_given() -> None:
    env = ({"name": "A", "value": "1"},)
    pod = deployment(inputs(service_account_name="sa", image_pull_secrets=("p1", "p2"), env=env))[
        "spec"
    ]["template"]["spec"]
    assert pod["serviceAccountName"] == "sa"
    assert pod["imagePullSecrets"] == [{"name": "p1"}, {"name": "p2"}]
    assert pod["containers"][0]["env"] == [{"name": "A", "value": "1"}]


def test_cluster_ip_service_exposes_http_8000_to_the_service_pods() -> None:
    svc = cluster_ip_service(inputs())
    assert svc["spec"] == {
        "type": "ClusterIP",
        "selector": {LABEL_SERVICE: "svc"},
        "ports": [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}],
    }
    assert svc["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_profile_env_lists_only_known_values() -> None:
    assert profile_env(profile_id=None, metric="latency", precision=None, gpu_count=2) == [
        {"name": "AIM_METRIC", "value": "latency"},
        {"name": "AIM_GPU_COUNT", "value": "2"},
    ]
    assert profile_env(profile_id=None, metric=None, precision=None, gpu_count=None) == []


def test_service_env_overrides_profile_env_by_name_and_output_is_sorted() -> None:
    merged = merge_env(
        [{"name": "B", "value": "profile"}, {"name": "A", "value": "1"}],
        [{"name": "B", "value": "service"}, {"name": "C", "valueFrom": {"fieldRef": {}}}],
    )
    assert merged == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "service"},
        {"name": "C", "valueFrom": {"fieldRef": {}}},
    ]


def test_applied_hash_is_stable_and_changes_with_content() -> None:
    a = with_applied_hash(deployment(inputs()))
    b = with_applied_hash(deployment(inputs()))
    c = with_applied_hash(deployment(inputs(replicas=3)))
    assert a == b
    assert a["metadata"]["annotations"][ANNOTATION_APPLIED_HASH] == applied_hash(a)
    assert c["metadata"]["annotations"][ANNOTATION_APPLIED_HASH] != applied_hash(a)


def _dep(replicas: int, generation: int = 2, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "svc", "generation": generation},
        "spec": {"replicas": replicas},
        "status": status,
    }


def test_deployment_available_when_available_and_updated_reach_replicas() -> None:
    state = deployment_state(_dep(2, observedGeneration=2, availableReplicas=2, updatedReplicas=2))
    assert (state.available, state.failed) == (True, False)


def test_deployment_with_zero_replicas_is_available_once_observed() -> None:
    assert deployment_state(_dep(0, observedGeneration=2)).available
    assert not deployment_state(_dep(0, observedGeneration=1)).available


def test_rollout_in_progress_is_not_available() -> None:
    old_pods_only = _dep(1, observedGeneration=2, availableReplicas=1, updatedReplicas=0)
    state = deployment_state(old_pods_only)
    assert (state.available, state.failed) == (False, False)
    assert state.message == "Deployment svc: 1/1 replicas available, 0 updated"
    unobserved = deployment_state(_dep(1, observedGeneration=1, availableReplicas=1))
    assert unobserved.message == "Deployment svc: rollout not yet observed"


def test_progress_deadline_and_replica_failure_are_failures() -> None:
    deadline = _dep(
        1,
        conditions=[
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": "ReplicaSet svc-1 has timed out progressing.",
            }
        ],
    )
    state = deployment_state(deadline)
    assert (state.available, state.failed) == (False, True)
    assert state.message == "Deployment svc: ReplicaSet svc-1 has timed out progressing."
    quota = _dep(1, conditions=[{"type": "ReplicaFailure", "status": "True", "message": "quota"}])
    assert deployment_state(quota).failed
