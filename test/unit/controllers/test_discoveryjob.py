"""The discovery Job: its name, its hardened shape, and how its result is read."""

from __future__ import annotations

import re
from typing import Any

import pytest

from aimctrl.controllers.discoveryjob import (
    ANNOTATION_IMAGE,
    DISCOVERY_JOB_LABEL,
    DiscoveryJobSpec,
    JobFailed,
    JobRunning,
    JobSucceeded,
    ModelKey,
    build_discovery_job,
    discovery_job_name,
    model_key_of,
    read_job_outcome,
)
from aimctrl.discovery.discover import DiscoveryResult
from aimctrl.discovery.errors import Reason
from aimctrl.discovery.labels import ImageMetadata, ModelMetadata
from aimctrl.discovery.termination import DiscoveryFailure, encode_termination_message
from aimctrl.testing.controlplane import DISCOVERY_POD_LABEL

RFC1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
IMAGE = "registry.example/aim/llama:1"


def _spec(**kw: Any) -> DiscoveryJobSpec:
    defaults: dict[str, Any] = {
        "job_name": "llama-discovery",
        "namespace": "team",
        "model_api_version": "aim.silogen.ai/v1alpha1",
        "model_kind": "AIMModel",
        "model_name": "llama",
        "model_namespace": "team",
        "model_uid": "uid-1",
        "image": IMAGE,
        "discovery_image": "aimctrl:1.0",
    }
    return DiscoveryJobSpec(**{**defaults, **kw})


def test_pod_label_is_the_one_the_harness_runner_selects() -> None:
    assert DISCOVERY_JOB_LABEL == DISCOVERY_POD_LABEL


def test_short_names_keep_the_seed_spelling() -> None:
    name = discovery_job_name("llama", cluster_scoped=True, in_operator_namespace=True)
    assert name == "llama-discovery"
    assert (
        discovery_job_name("llama", cluster_scoped=False, in_operator_namespace=False)
        == "llama-discovery"
    )


def test_namespaced_model_in_the_operator_namespace_does_not_collide_with_cluster_model() -> None:
    cluster = discovery_job_name("llama", cluster_scoped=True, in_operator_namespace=True)
    namespaced = discovery_job_name("llama", cluster_scoped=False, in_operator_namespace=True)
    assert cluster != namespaced
    assert namespaced == "llama-ns-discovery"


@pytest.mark.parametrize(
    "model", ["a" * 63, "a" * 54, "meta.llama.3-8b", "x" * 253, "Upper.Case-..-name"]
)
def test_long_or_dotted_names_become_valid_distinct_labels(model: str) -> None:
    for cluster in (True, False):
        name = discovery_job_name(model, cluster_scoped=cluster, in_operator_namespace=cluster)
        assert len(name) <= 63
        assert RFC1123_LABEL.match(name), name
        assert name.endswith("-discovery")
    assert discovery_job_name(
        model + "b", cluster_scoped=True, in_operator_namespace=True
    ) != discovery_job_name(model, cluster_scoped=True, in_operator_namespace=True)


def test_job_is_hardened_and_runs_aimctrl_discover_once() -> None:
    job = build_discovery_job(
        _spec(
            pull_secrets=("first", "second"),
            service_account_name="discoverer",
            insecure_registries=("127.0.0.1:5000",),
            active_deadline_seconds=120,
            ttl_seconds_after_finished=600,
        )
    )
    spec = job["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (0, 120)
    assert spec["ttlSecondsAfterFinished"] == 600
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "discoverer"
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 65532
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert container["command"] == ["aimctrl"]
    assert container["args"] == [
        "discover",
        IMAGE,
        "--pull-secrets-dir=/var/run/aimctrl/pull-secrets",
        "--termination-message-path=/dev/termination-log",
        "--log-format=json",
        "--insecure-registry=127.0.0.1:5000",
    ]
    assert container["terminationMessagePolicy"] == "File"
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "256Mi"}
    mounts = [(m["mountPath"], m["readOnly"]) for m in container["volumeMounts"]]
    assert mounts == [
        ("/var/run/aimctrl/pull-secrets/00-first", True),
        ("/var/run/aimctrl/pull-secrets/01-second", True),
    ]
    assert [v["secret"]["secretName"] for v in pod["volumes"]] == ["first", "second"]


def test_job_without_pull_secrets_passes_no_secrets_dir() -> None:
    job = build_discovery_job(_spec())
    pod = job["spec"]["template"]["spec"]
    assert not any(a.startswith("--pull-secrets-dir") for a in pod["containers"][0]["args"])
    assert "serviceAccountName" not in pod
    assert pod["volumes"] == []


def test_job_is_controlled_by_the_model_and_labelled_for_its_pod() -> None:
    job = build_discovery_job(
        _spec(
            job_name="llama-discovery",
            namespace="aimctrl-system",
            model_kind="AIMClusterModel",
            model_namespace="",
        )
    )
    meta = job["metadata"]
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "aim.silogen.ai/v1alpha1",
            "kind": "AIMClusterModel",
            "name": "llama",
            "uid": "uid-1",
            "controller": True,
        }
    ]
    assert meta["annotations"][ANNOTATION_IMAGE] == IMAGE
    template = job["spec"]["template"]
    assert template["metadata"]["labels"][DISCOVERY_JOB_LABEL] == "llama-discovery"
    assert model_key_of(job) == ModelKey("AIMClusterModel", "", "llama")
    assert model_key_of(template) == ModelKey("AIMClusterModel", "", "llama")
    assert model_key_of({"metadata": {"labels": {}}}) is None


# -- reading results ---------------------------------------------------------------------------


def _job(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "llama-discovery",
            "namespace": "team",
            "uid": "job-uid",
            "annotations": {ANNOTATION_IMAGE: IMAGE},
        },
        "status": status,
    }


def _pod(message: str, *, exit_code: int = 0, owner: str = "job-uid") -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "ownerReferences": [{"uid": owner, "controller": True}]},
        "status": {
            "containerStatuses": [
                {
                    "name": "discover",
                    "state": {"terminated": {"exitCode": exit_code, "message": message}},
                }
            ]
        },
    }


def _result(image: str = IMAGE) -> DiscoveryResult:
    return DiscoveryResult(
        image=image,
        digest="sha256:" + "a" * 64,
        platform="linux/amd64",
        discovered_at="2025-01-01T00:00:00Z",
        image_metadata=ImageMetadata(model=ModelMetadata(canonical_name="x/y")),
    )


def test_a_successful_pod_gives_the_result() -> None:
    outcome = read_job_outcome(_job(), [_pod(encode_termination_message(_result()))])
    assert isinstance(outcome, JobSucceeded)
    assert outcome.result.image_metadata.model.canonical_name == "x/y"


def test_a_structured_failure_keeps_its_reason_and_is_final() -> None:
    failure = DiscoveryFailure(reason=Reason.IMAGE_NOT_FOUND, message="no such tag")
    outcome = read_job_outcome(_job(), [_pod(encode_termination_message(failure), exit_code=4)])
    assert outcome == JobFailed(reason="ImageNotFound", message="no such tag", transient=False)


def test_registry_unavailable_is_transient() -> None:
    failure = DiscoveryFailure(reason=Reason.REGISTRY_UNAVAILABLE, message="503")
    outcome = read_job_outcome(_job(), [_pod(encode_termination_message(failure), exit_code=1)])
    assert isinstance(outcome, JobFailed)
    assert outcome.transient


def test_a_pod_of_another_job_is_never_read() -> None:
    pod = _pod(encode_termination_message(_result()), owner="old-job-uid")
    assert isinstance(read_job_outcome(_job(), [pod]), JobRunning)


def test_a_result_for_another_image_is_rejected() -> None:
    outcome = read_job_outcome(_job(), [_pod(encode_termination_message(_result("other:1")))])
    assert isinstance(outcome, JobFailed)
    assert outcome.transient
    assert "other:1" in outcome.message


def test_a_crash_without_structured_message_is_transient() -> None:
    outcome = read_job_outcome(_job(), [_pod("Traceback (most recent call last)", exit_code=1)])
    assert isinstance(outcome, JobFailed)
    assert outcome.transient
    assert "exited with code 1" in outcome.message


def test_a_job_past_its_deadline_without_pod_result_is_transient() -> None:
    job = _job(
        conditions=[
            {"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "late"}
        ]
    )
    outcome = read_job_outcome(job, [])
    assert isinstance(outcome, JobFailed)
    assert outcome.transient
    assert "DeadlineExceeded" in outcome.message
