"""The pydantic models parse the API's camelCase JSON and dump it back unchanged."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from aimctrl.api.v1alpha1 import (
    ALL_KINDS,
    AIMClusterModel,
    AIMClusterRuntimeConfig,
    AIMClusterServiceTemplate,
    AIMModel,
    AIMObject,
    AIMRuntimeConfig,
    AIMService,
    AIMServiceTemplate,
    AIMStatus,
    Condition,
    ConditionStatus,
    CreationScope,
    Metric,
    ObjectMeta,
    Precision,
)

CLUSTER_MODEL: dict[str, Any] = {
    "apiVersion": "aim.silogen.ai/v1alpha1",
    "kind": "AIMClusterModel",
    "metadata": {
        "name": "meta-llama-3-8b-instruct",
        "uid": "0b7d3c4e-1111-2222-3333-444455556666",
        "resourceVersion": "4711",
        "generation": 3,
        "creationTimestamp": "2025-01-02T03:04:05Z",
        "labels": {"team": "platform"},
        "annotations": {"aim.silogen.ai/rediscover": "1"},
        "ownerReferences": [],
        "finalizers": [],
    },
    "spec": {
        "image": "ghcr.io/silogen/aim-meta-llama-llama-3-1-8b-instruct:0.7.0",
        "discovery": {"enabled": True, "autoCreateTemplates": True},
        "defaultServiceTemplate": "llama-latency",
        "runtimeConfigName": "platform-default",
        "imagePullSecrets": [{"name": "ghcr"}],
        "serviceAccountName": "aim-discovery",
        "resources": {
            "limits": {"cpu": "8", "memory": "64Gi", "amd.com/gpu": "1"},
            "requests": {"cpu": "4", "memory": "32Gi"},
        },
    },
    "status": {
        "observedGeneration": 3,
        "status": "Ready",
        "conditions": [
            {
                "type": "MetadataExtracted",
                "status": "True",
                "observedGeneration": 3,
                "lastTransitionTime": "2025-01-02T03:05:00Z",
                "reason": "MetadataExtracted",
                "message": "2 recommended deployments",
            }
        ],
        "resolvedRuntimeConfig": {
            "name": "platform-default",
            "scope": "Cluster",
            "kind": "AIMClusterRuntimeConfig",
            "uid": "u-1",
        },
        "imageMetadata": {
            "model": {
                "canonicalName": "meta-llama/Llama-3.1-8B-Instruct",
                "source": "https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct",
                "tags": ["text-generation", "chat"],
                "versions": ["0.7.0"],
                "variants": ["instruct"],
                "hfTokenRequired": True,
                "title": "Llama 3.1 8B Instruct",
                "descriptionFull": "Meta's instruction-tuned model.",
                "releaseNotes": "First release.",
                "recommendedDeployments": [
                    {
                        "gpuModel": "MI300X",
                        "gpuCount": 1,
                        "precision": "fp8",
                        "metric": "latency",
                        "description": "Single GPU, low latency",
                        "profileId": "vllm-mi300x-fp8-tp1-latency",
                    }
                ],
            },
            "oci": {"title": "aim-llama", "licenses": "Apache-2.0", "version": "0.7.0"},
        },
        "discoveredMetadata": {
            "image": "ghcr.io/silogen/aim-meta-llama-llama-3-1-8b-instruct:0.7.0",
            "digest": "sha256:" + "a" * 64,
            "platform": "linux/amd64",
            "discoveredAt": "2025-01-02T03:05:00Z",
            "jobName": "meta-llama-3-8b-instruct-discovery",
            "modelSources": [
                {"name": "weights", "sourceUri": "hf://meta-llama/Llama-3.1-8B-Instruct"}
            ],
            "gpu": {"models": ["MI300X"], "minCount": 1},
        },
    },
}

TEMPLATE: dict[str, Any] = {
    "apiVersion": "aim.silogen.ai/v1alpha1",
    "kind": "AIMServiceTemplate",
    "metadata": {
        "name": "llama-3-8b-1x-mi300x-lat-fp8-27c0",
        "namespace": "ml-team",
        "labels": {"aim.silogen.ai/auto-generated": "true"},
        "annotations": {},
        "ownerReferences": [
            {
                "apiVersion": "aim.silogen.ai/v1alpha1",
                "kind": "AIMModel",
                "name": "llama-3-8b",
                "uid": "u-2",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
        "finalizers": [],
    },
    "spec": {
        "modelName": "llama-3-8b",
        "metric": "latency",
        "precision": "fp8",
        "gpuSelector": {"model": "MI300X", "count": 1, "resourceName": "amd.com/gpu"},
        "profileId": "p1",
        "runtimeConfigName": "default",
    },
    "status": {
        "status": "Degraded",
        "conditions": [],
        "resolvedModel": {"name": "llama-3-8b", "namespace": "ml-team", "scope": "Namespace"},
        "profile": {
            "metadata": {
                "gpu": "MI300X",
                "gpu_count": 1,
                "metric": "latency",
                "precision": "fp8",
                "engine": "vllm",
                "type": "optimized",
            }
        },
    },
}

SERVICE: dict[str, Any] = {
    "apiVersion": "aim.silogen.ai/v1alpha1",
    "kind": "AIMService",
    "metadata": {
        "name": "my-service",
        "namespace": "ml-team",
        "labels": {},
        "annotations": {},
        "ownerReferences": [],
        "finalizers": [],
    },
    "spec": {
        "model": {"image": "ghcr.io/example/my-model:v1.0.0"},
        "runtimeConfigName": "default",
        "replicas": 2,
        "env": [
            {"name": "A", "value": "1"},
            {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ],
    },
    "status": {
        "status": "Progressing",
        "conditions": [],
        "resolvedModel": {"name": "auto-0123456789ab", "scope": "Cluster"},
        "resolvedResources": {"limits": {"amd.com/gpu": "1"}, "requests": {"amd.com/gpu": "1"}},
        "templateCandidates": [
            {"name": "t1", "scope": "Namespace", "chosen": True, "reason": "latency"},
            {"name": "t2", "scope": "Cluster", "chosen": False, "reason": "not Ready"},
        ],
    },
}

RUNTIME_CONFIG: dict[str, Any] = {
    "apiVersion": "aim.silogen.ai/v1alpha1",
    "kind": "AIMRuntimeConfig",
    "metadata": {
        "name": "default",
        "namespace": "ml-team",
        "labels": {},
        "annotations": {},
        "ownerReferences": [],
        "finalizers": [],
    },
    "spec": {
        "serviceAccountName": "aim-runtime",
        "imagePullSecrets": [{"name": "private-registry"}],
        "model": {"creationScope": "Cluster", "autoDiscovery": False},
    },
    "status": {"conditions": []},
}


@pytest.mark.parametrize(
    ("kind", "obj"),
    [
        (AIMClusterModel, CLUSTER_MODEL),
        (AIMServiceTemplate, TEMPLATE),
        (AIMService, SERVICE),
        (AIMRuntimeConfig, RUNTIME_CONFIG),
    ],
)
def test_fully_populated_object_round_trips_unchanged(
    kind: type[AIMObject], obj: dict[str, Any]
) -> None:
    assert kind.model_validate(obj).to_dict() == obj


def test_minimal_object_dump_adds_only_defaults() -> None:
    obj = {
        "apiVersion": "aim.silogen.ai/v1alpha1",
        "kind": "AIMModel",
        "metadata": {"name": "m", "namespace": "ns"},
        "spec": {"image": "registry.example/m:1"},
    }
    dumped = AIMModel.model_validate(obj).to_dict()
    assert dumped["spec"] == {
        "image": "registry.example/m:1",
        "discovery": {"autoCreateTemplates": True},
        "runtimeConfigName": "default",
    }
    assert dumped["status"] == {"status": "Pending", "conditions": []}
    assert dumped["metadata"]["name"] == "m"
    assert dumped["metadata"]["namespace"] == "ns"


def test_unknown_server_fields_are_ignored() -> None:
    obj = copy.deepcopy(SERVICE)
    obj["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    obj["spec"]["futureField"] = {"x": 1}
    obj["status"]["somethingNew"] = True
    parsed = AIMService.model_validate(obj)
    assert parsed.to_dict() == SERVICE


def test_integer_quantities_become_strings() -> None:
    spec = {"image": "i", "resources": {"limits": {"cpu": 8, "memory": "64Gi"}}}
    model = AIMClusterModel.model_validate({"metadata": {"name": "m"}, "spec": spec})
    assert model.spec.resources is not None
    assert model.spec.resources.limits == {"cpu": "8", "memory": "64Gi"}


def test_malformed_quantity_is_rejected() -> None:
    spec = {"image": "i", "resources": {"limits": {"cpu": "eight"}}}
    with pytest.raises(ValidationError, match="not a Kubernetes quantity"):
        AIMClusterModel.model_validate({"metadata": {"name": "m"}, "spec": spec})


def test_enums_parse_to_members() -> None:
    template = AIMServiceTemplate.model_validate(TEMPLATE)
    assert template.spec.metric is Metric.LATENCY
    assert template.spec.precision is Precision.FP8
    assert template.status.status is AIMStatus.DEGRADED
    assert template.status.profile is not None
    assert template.status.profile.metadata is not None
    assert template.status.profile.metadata.gpu_count == 1


def test_bad_enum_value_is_rejected() -> None:
    obj = copy.deepcopy(TEMPLATE)
    obj["spec"]["precision"] = "fp64"
    with pytest.raises(ValidationError, match="precision"):
        AIMServiceTemplate.model_validate(obj)


def test_python_field_names_are_accepted_too() -> None:
    cond = Condition(
        type="Ready", status=ConditionStatus.TRUE, reason="Ready", observed_generation=2
    )
    assert cond.to_dict() == {
        "type": "Ready",
        "status": "True",
        "reason": "Ready",
        "message": "",
        "observedGeneration": 2,
    }


def test_timestamps_serialise_as_rfc3339_utc_seconds() -> None:
    model = AIMClusterModel.model_validate(CLUSTER_MODEL)
    assert model.metadata.creation_timestamp is not None
    assert model.metadata.creation_timestamp.tzinfo is not None
    assert model.to_dict()["metadata"]["creationTimestamp"] == "2025-01-02T03:04:05Z"


def test_runtime_config_policy_defaults_apply_only_when_unset() -> None:
    unset = AIMClusterRuntimeConfig.model_validate({"metadata": {"name": "default"}})
    assert unset.spec.model is None
    assert unset.to_dict()["spec"] == {}
    parsed = AIMRuntimeConfig.model_validate(RUNTIME_CONFIG)
    assert parsed.spec.model is not None
    assert parsed.spec.model.effective_creation_scope is CreationScope.CLUSTER
    assert parsed.spec.model.effective_auto_discovery is False
    empty = AIMRuntimeConfig.model_validate({"metadata": {"name": "x"}, "spec": {"model": {}}})
    assert empty.spec.model is not None
    assert empty.spec.model.effective_creation_scope is CreationScope.NAMESPACE
    assert empty.spec.model.effective_auto_discovery is True


def test_every_kind_declares_its_rest_identity() -> None:
    identities = {k.RESOURCE.resource for k in ALL_KINDS}
    assert identities == {
        ("aim.silogen.ai", "v1alpha1", "aimclustermodels", "AIMClusterModel", False),
        ("aim.silogen.ai", "v1alpha1", "aimmodels", "AIMModel", True),
        (
            "aim.silogen.ai",
            "v1alpha1",
            "aimclusterservicetemplates",
            "AIMClusterServiceTemplate",
            False,
        ),
        ("aim.silogen.ai", "v1alpha1", "aimservicetemplates", "AIMServiceTemplate", True),
        ("aim.silogen.ai", "v1alpha1", "aimservices", "AIMService", True),
        (
            "aim.silogen.ai",
            "v1alpha1",
            "aimclusterruntimeconfigs",
            "AIMClusterRuntimeConfig",
            False,
        ),
        ("aim.silogen.ai", "v1alpha1", "aimruntimeconfigs", "AIMRuntimeConfig", True),
    }
    for kind in ALL_KINDS:
        assert kind.model_fields["kind"].default == kind.RESOURCE.kind
        assert kind.RESOURCE.categories == ("aim", "all")


def test_short_names_match_the_spec_table() -> None:
    assert {k.RESOURCE.kind: k.RESOURCE.short_names for k in ALL_KINDS} == {
        "AIMClusterModel": ("aimclmdl",),
        "AIMModel": ("aimmdl",),
        "AIMClusterServiceTemplate": ("aimclst",),
        "AIMServiceTemplate": ("aimst",),
        "AIMService": ("aimsvc",),
        "AIMClusterRuntimeConfig": ("aimcrcfg",),
        "AIMRuntimeConfig": ("aimrcfg",),
    }


def test_cluster_template_shares_the_namespaced_spec() -> None:
    obj = copy.deepcopy(TEMPLATE)
    obj["kind"] = "AIMClusterServiceTemplate"
    del obj["metadata"]["namespace"]
    assert AIMClusterServiceTemplate.model_validate(obj).to_dict() == obj


def test_metadata_defaults_are_empty_collections() -> None:
    meta = ObjectMeta(name="x")
    assert meta.labels == {}
    assert meta.owner_references == []
    assert meta.namespace is None
