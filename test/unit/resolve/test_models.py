from __future__ import annotations

import hashlib
from typing import Any

import pytest

from aimctrl.api.v1alpha1.common import LocalObjectReference
from aimctrl.api.v1alpha1.enums import CreationScope, ResolvedScope
from aimctrl.api.v1alpha1.model import AIMClusterModel, AIMModel
from aimctrl.resolve.models import (
    LABEL_AUTO_CREATED,
    auto_model_name,
    auto_model_object,
    find_model_by_image,
    lookup_model,
    resolved_reference,
)

IMAGE = "ghcr.io/silogen/aim-llama:0.7.0"


def _ns(name: str, ns: str = "team", *, image: str = IMAGE, **meta: Any) -> AIMModel:
    return AIMModel.model_validate(
        {
            "metadata": {"name": name, "namespace": ns, "uid": f"ns-{name}", **meta},
            "spec": {"image": image},
        }
    )


def _cl(name: str, *, image: str = IMAGE, **meta: Any) -> AIMClusterModel:
    return AIMClusterModel.model_validate(
        {"metadata": {"name": name, "uid": f"cl-{name}", **meta}, "spec": {"image": image}}
    )


def _lookup(name: str, namespace: str, ns: list[AIMModel], cl: list[AIMClusterModel]) -> Any:
    nsd = {(m.metadata.namespace, m.metadata.name): m for m in ns}
    cld = {m.metadata.name: m for m in cl}
    return lookup_model(
        name, namespace, get_namespaced=lambda n, m: nsd.get((n, m)), get_cluster=cld.get
    )


@pytest.mark.parametrize(
    ("namespace", "ns_models", "cl_models", "expected"),
    [
        ("team", [_ns("llama")], [_cl("llama")], ("AIMModel", "ns-llama")),
        ("team", [], [_cl("llama")], ("AIMClusterModel", "cl-llama")),
        ("other", [_ns("llama")], [_cl("llama")], ("AIMClusterModel", "cl-llama")),
        ("", [_ns("llama")], [_cl("llama")], ("AIMClusterModel", "cl-llama")),
        ("team", [_ns("llama", "other")], [], None),
    ],
    ids=[
        "namespace-shadows-cluster",
        "cluster-fallback",
        "other-namespace-invisible",
        "cluster-consumer-sees-cluster-only",
        "not-found",
    ],
)
def test_lookup_model(
    namespace: str,
    ns_models: list[AIMModel],
    cl_models: list[AIMClusterModel],
    expected: tuple[str, str] | None,
) -> None:
    found = _lookup("llama", namespace, ns_models, cl_models)
    if expected is None:
        assert found is None
    else:
        kind, model = found
        assert (kind, model.metadata.uid) == expected


def _find(ns_models: list[AIMModel], cl_models: list[AIMClusterModel], image: str = IMAGE) -> Any:
    return find_model_by_image(image, "team", namespaced_models=ns_models, cluster_models=cl_models)


def test_find_by_image_prefers_the_services_namespace() -> None:
    found = _find([_ns("a")], [_cl("b")])
    assert found.kind == "AIMModel"
    assert found.model.metadata.name == "a"


def test_find_by_image_falls_back_to_cluster_and_ignores_other_namespaces() -> None:
    found = _find([_ns("a", "other")], [_cl("b")])
    assert found.kind == "AIMClusterModel"
    assert found.model.metadata.name == "b"


def test_find_by_image_matches_exactly() -> None:
    assert _find([_ns("a", image=IMAGE + "-rc")], [_cl("b", image="GHCR.io/x:1")]) is None


def test_find_by_image_breaks_ties_by_oldest_then_name_and_skips_deleted() -> None:
    old, new = "2024-01-01T00:00:00Z", "2024-06-01T00:00:00Z"
    models = [
        _ns("z-old", creationTimestamp=old),
        _ns("a-new", creationTimestamp=new),
        _ns("b-old", creationTimestamp=old),
        _ns("a-oldest", creationTimestamp="2023-01-01T00:00:00Z", deletionTimestamp=new),
        _ns("no-timestamp"),
    ]
    assert _find(models, []).model.metadata.name == "b-old"
    assert _find(list(reversed(models)), []).model.metadata.name == "b-old"


def test_auto_model_name_is_auto_plus_12_hex_of_the_image_sha256() -> None:
    expected = "auto-" + hashlib.sha256(IMAGE.encode()).hexdigest()[:12]
    assert auto_model_name(IMAGE) == expected
    assert len(expected) == 17
    assert auto_model_name(IMAGE) != auto_model_name(IMAGE + "x")


def test_auto_model_object_namespace_scope() -> None:
    obj = auto_model_object(
        IMAGE,
        scope=CreationScope.NAMESPACE,
        namespace="team",
        auto_discovery=False,
        image_pull_secrets=[LocalObjectReference(name="pull")],
        service_account_name="svc",
    )
    assert obj == {
        "apiVersion": "aim.silogen.ai/v1alpha1",
        "kind": "AIMModel",
        "metadata": {
            "name": auto_model_name(IMAGE),
            "namespace": "team",
            "labels": {LABEL_AUTO_CREATED: "true"},
        },
        "spec": {
            "image": IMAGE,
            "discovery": {"enabled": False, "autoCreateTemplates": True},
            "imagePullSecrets": [{"name": "pull"}],
            "serviceAccountName": "svc",
        },
    }
    assert AIMModel.model_validate(obj).spec.discovery.enabled is False


def test_auto_model_object_cluster_scope_has_no_namespace() -> None:
    obj = auto_model_object(
        IMAGE, scope=CreationScope.CLUSTER, namespace="team", auto_discovery=True
    )
    assert obj["kind"] == "AIMClusterModel"
    assert "namespace" not in obj["metadata"]
    assert obj["spec"]["discovery"] == {"enabled": True, "autoCreateTemplates": True}
    assert "imagePullSecrets" not in obj["spec"]
    AIMClusterModel.model_validate(obj)


def test_auto_model_object_namespace_scope_needs_a_namespace() -> None:
    with pytest.raises(ValueError, match="namespace"):
        auto_model_object(IMAGE, scope=CreationScope.NAMESPACE, namespace="", auto_discovery=True)


def test_resolved_reference_records_scope_by_kind() -> None:
    ns_ref = resolved_reference(_ns("a"))
    cl_ref = resolved_reference(_cl("b"))
    assert (ns_ref.scope, ns_ref.namespace, ns_ref.kind) == (
        ResolvedScope.NAMESPACE,
        "team",
        "AIMModel",
    )
    assert (cl_ref.scope, cl_ref.namespace, cl_ref.uid) == (ResolvedScope.CLUSTER, None, "cl-b")
