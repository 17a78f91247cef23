"""The generated CRDs are structural, described, and carry SPEC §2's validation and columns."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from aimctrl.api.crdgen import custom_resource_definition, openapi_schema
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
)

KIND_IDS = [k.RESOURCE.kind for k in ALL_KINDS]


def _nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path; properties are `.name`, items `[]`, map values `{}`."""
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _nodes(child, f"{path}.{name}")
    if "items" in node:
        yield from _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}{{}}")
    for branch in node.get("anyOf", []):
        yield from _nodes(branch, f"{path}|")


def _at(schema: dict[str, Any], dotted: str) -> dict[str, Any]:
    node = schema
    for part in dotted.split("."):
        node = node["items"] if part == "[]" else node["properties"][part]
    return node


@pytest.fixture(params=ALL_KINDS, ids=KIND_IDS)
def kind(request: pytest.FixtureRequest) -> type[AIMObject]:
    return request.param  # type: ignore[no-any-return]


def test_schema_has_no_refs_titles_or_null_types(kind: type[AIMObject]) -> None:
    text = repr(openapi_schema(kind))
    assert "$ref" not in text
    assert "$defs" not in text
    assert "'null'" not in text
    for path, node in _nodes(openapi_schema(kind)):
        assert "title" not in node, path
        assert "nullable" not in node, path


def test_every_node_is_structurally_typed(kind: type[AIMObject]) -> None:
    for path, node in _nodes(openapi_schema(kind)):
        if path.endswith("|"):
            assert set(node) == {"type"}, f"{path}: anyOf branches may only carry a type"
            continue
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
            assert "type" not in node, path
            continue
        assert "type" in node, f"{path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path


def test_every_property_has_a_description(kind: type[AIMObject]) -> None:
    schema = openapi_schema(kind)
    assert schema.get("description")
    for path, node in _nodes(schema):
        if path == ".metadata":  # the server forbids anything but `type: object` there
            assert node == {"type": "object"}
        elif path and not path.endswith(("[]", "{}", "|")):
            assert node.get("description"), f"{path} has no description"


def test_no_preserve_unknown_fields(kind: type[AIMObject]) -> None:
    assert "x-kubernetes-preserve-unknown-fields" not in repr(openapi_schema(kind))


def test_conditions_are_a_list_map_keyed_by_type(kind: type[AIMObject]) -> None:
    conditions = _at(openapi_schema(kind), "status.conditions")
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) >= {"type", "status", "reason"}
    assert conditions["items"]["properties"]["status"]["enum"] == ["True", "False", "Unknown"]


def test_crd_has_status_subresource_categories_and_scope(kind: type[AIMObject]) -> None:
    crd = custom_resource_definition(kind)
    info = kind.RESOURCE
    assert crd["metadata"]["name"] == f"{info.plural}.aim.silogen.ai"
    assert crd["spec"]["scope"] == ("Namespaced" if info.namespaced else "Cluster")
    assert crd["spec"]["names"]["categories"] == ["aim", "all"]
    assert crd["spec"]["names"]["shortNames"] == list(info.short_names)
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1"
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}


def _columns(kind: type[AIMObject]) -> list[tuple[str, str, int]]:
    (version,) = custom_resource_definition(kind)["spec"]["versions"]
    return [
        (c["name"], c["jsonPath"], c.get("priority", 0))
        for c in version["additionalPrinterColumns"]
    ]


@pytest.mark.parametrize("model", [AIMClusterModel, AIMModel], ids=["cluster", "namespaced"])
def test_model_printer_columns(model: type[AIMObject]) -> None:
    assert _columns(model) == [
        ("Status", ".status.status", 0),
        ("Image", ".spec.image", 0),
        ("Model", ".status.imageMetadata.model.canonicalName", 1),
        ("Age", ".metadata.creationTimestamp", 0),
    ]


@pytest.mark.parametrize(
    "template", [AIMClusterServiceTemplate, AIMServiceTemplate], ids=["cluster", "namespaced"]
)
def test_template_printer_columns(template: type[AIMObject]) -> None:
    assert [name for name, _, _ in _columns(template)] == [
        "Status",
        "Model",
        "Metric",
        "Precision",
        "GPU",
        "GPUs",
        "Age",
        "Available",
    ]
    (version,) = custom_resource_definition(template)["spec"]["versions"]
    gpus = next(c for c in version["additionalPrinterColumns"] if c["name"] == "GPUs")
    assert gpus == {
        "name": "GPUs",
        "type": "integer",
        "jsonPath": ".status.profile.metadata.gpu_count",
        "description": "GPUs per replica",
    }


def test_service_printer_columns() -> None:
    assert _columns(AIMService) == [
        ("Status", ".status.status", 0),
        ("Model", ".status.resolvedModel.name", 0),
        ("Template", ".status.resolvedTemplate.name", 0),
        ("Replicas", ".spec.replicas", 0),
        ("Age", ".metadata.creationTimestamp", 0),
    ]


@pytest.mark.parametrize(
    "config", [AIMClusterRuntimeConfig, AIMRuntimeConfig], ids=["cluster", "namespaced"]
)
def test_runtime_config_printer_columns(config: type[AIMObject]) -> None:
    assert _columns(config) == [
        ("ServiceAccount", ".spec.serviceAccountName", 0),
        ("Age", ".metadata.creationTimestamp", 0),
    ]


def test_service_requires_exactly_one_of_ref_or_image() -> None:
    spec = _at(openapi_schema(AIMService), "spec")
    assert "model" in spec["required"]
    (rule,) = spec["x-kubernetes-validations"]
    assert rule["fieldPath"] == ".model"
    assert "exactly one of model.ref or model.image" in rule["message"]
    assert "has(self.model.ref) != has(self.model.image)" in rule["rule"]


@pytest.mark.parametrize("field", ["modelName", "metric", "precision", "gpuSelector"])
@pytest.mark.parametrize(
    "template", [AIMClusterServiceTemplate, AIMServiceTemplate], ids=["cluster", "namespaced"]
)
def test_template_identity_fields_are_immutable(template: type[AIMObject], field: str) -> None:
    spec = _at(openapi_schema(template), "spec")
    assert {"rule": "self == oldSelf", "message": f"{field} is immutable"} in spec["properties"][
        field
    ]["x-kubernetes-validations"]
    if field != "modelName":  # required, so it can be neither added nor removed
        presence = [r for r in spec["x-kubernetes-validations"] if r["fieldPath"] == f".{field}"]
        assert presence[0]["rule"] == f"has(self.{field}) == has(oldSelf.{field})"


@pytest.mark.parametrize("model", [AIMClusterModel, AIMModel], ids=["cluster", "namespaced"])
def test_model_spec_validation_and_defaults(model: type[AIMObject]) -> None:
    schema = openapi_schema(model)
    assert schema["required"] == ["spec"]
    spec = _at(schema, "spec")
    assert spec["required"] == ["image"]
    assert spec["properties"]["image"]["minLength"] == 1
    assert spec["properties"]["runtimeConfigName"]["default"] == "default"
    assert spec["properties"]["discovery"]["default"] == {}
    discovery = spec["properties"]["discovery"]["properties"]
    assert discovery["autoCreateTemplates"]["default"] is True
    assert "default" not in discovery["enabled"]
    limits = _at(schema, "spec.resources.limits")["additionalProperties"]
    assert limits["x-kubernetes-int-or-string"] is True
    assert _at(schema, "status.status")["enum"] == [
        "Pending",
        "Progressing",
        "Ready",
        "Degraded",
        "Failed",
        "NotAvailable",
    ]
    assert _at(schema, "status.resolvedRuntimeConfig.scope")["enum"] == [
        "Namespace",
        "Cluster",
        "Merged",
    ]


def test_template_enums_minimums_and_defaults() -> None:
    spec = _at(openapi_schema(AIMServiceTemplate), "spec")
    props = spec["properties"]
    assert props["metric"]["enum"] == ["latency", "throughput"]
    assert props["precision"]["enum"] == [
        "auto",
        "fp4",
        "fp8",
        "fp16",
        "fp32",
        "bf16",
        "int4",
        "int8",
    ]
    assert props["gpuSelector"]["properties"]["count"]["minimum"] == 1
    assert props["gpuSelector"]["properties"]["resourceName"]["default"] == "amd.com/gpu"
    assert spec["required"] == ["modelName"]
    assert (
        "gpu_count"
        in _at(openapi_schema(AIMServiceTemplate), "status.profile.metadata")["properties"]
    )


def test_service_defaults_and_env_list_map() -> None:
    spec = _at(openapi_schema(AIMService), "spec")
    assert spec["properties"]["replicas"]["default"] == 1
    assert spec["properties"]["replicas"]["minimum"] == 0
    env = spec["properties"]["env"]
    assert env["x-kubernetes-list-type"] == "map"
    assert env["x-kubernetes-list-map-keys"] == ["name"]
    assert env["items"]["required"] == ["name"]


def test_runtime_config_enums_without_schema_defaults() -> None:
    model = _at(openapi_schema(AIMRuntimeConfig), "spec.model")
    assert model["properties"]["creationScope"]["enum"] == ["Cluster", "Namespace"]
    assert "default" not in model["properties"]["creationScope"]
    assert "default" not in model
    assert "required" not in openapi_schema(AIMRuntimeConfig)
