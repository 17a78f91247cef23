"""Every sample under config/samples parses with the models and validates against its CRD schema.

The schema check is a small validator for the subset of OpenAPI the generated CRDs use (types,
required, enums, minimums, lengths, patterns, int-or-string, unknown fields). CEL rules are
checked by the admission tests against a real API server.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from aimctrl.api.crdgen import openapi_schema
from aimctrl.api.v1alpha1 import ALL_KINDS, API_VERSION, AIMObject

ROOT = Path(__file__).resolve().parents[4]
SAMPLES = ROOT / "config" / "samples"
KINDS: dict[str, type[AIMObject]] = {k.RESOURCE.kind: k for k in ALL_KINDS}

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "boolean": (bool,),
    "number": (int, float),
}


def schema_errors(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """What the API server's OpenAPI validation (and pruning) would object to."""
    if schema.get("x-kubernetes-int-or-string"):
        ok = isinstance(value, int | str) and not isinstance(value, bool)
        if ok and isinstance(value, str) and not re.search(schema["pattern"], value):
            ok = False
        return [] if ok else [f"{path}: {value!r} is not an int-or-string quantity"]
    well_typed = isinstance(value, _TYPES[schema["type"]])  # a bool, not a narrowing of value
    if not well_typed or (schema["type"] == "integer" and isinstance(value, bool)):
        return [f"{path}: expected {schema['type']}, got {value!r}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: {value} < {schema['minimum']}")
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(f"{path}: shorter than {schema['minLength']}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if schema["type"] == "object" and "properties" in schema:
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path}.{name}: required")
        for name, child in value.items():
            if name not in schema["properties"]:
                errors.append(f"{path}.{name}: unknown field (would be pruned)")
            else:
                errors.extend(schema_errors(child, schema["properties"][name], f"{path}.{name}"))
    elif schema["type"] == "object" and isinstance(schema.get("additionalProperties"), dict):
        for name, child in value.items():
            errors.extend(schema_errors(child, schema["additionalProperties"], f"{path}.{name}"))
    if schema["type"] == "array":
        for i, item in enumerate(value):
            errors.extend(schema_errors(item, schema["items"], f"{path}[{i}]"))
    return errors


def _sample_documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(SAMPLES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc and doc.get("apiVersion") == API_VERSION:
                docs.append((f"{path.name}#{i}", doc))
    return docs


SAMPLE_DOCS = _sample_documents()


def test_there_is_a_sample_of_every_kind() -> None:
    assert {doc["kind"] for _, doc in SAMPLE_DOCS} == set(KINDS)


def test_every_sample_file_is_listed_in_the_kustomization() -> None:
    listed = set(yaml.safe_load((SAMPLES / "kustomization.yaml").read_text())["resources"])
    on_disk = {p.name for p in SAMPLES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


@pytest.mark.parametrize(("name", "doc"), SAMPLE_DOCS, ids=[n for n, _ in SAMPLE_DOCS])
def test_sample_parses_and_round_trips(name: str, doc: dict[str, Any]) -> None:
    parsed = KINDS[doc["kind"]].model_validate(doc)
    again = KINDS[doc["kind"]].model_validate(parsed.to_dict())
    assert again == parsed
    assert parsed.metadata.name == doc["metadata"]["name"]


@pytest.mark.parametrize(("name", "doc"), SAMPLE_DOCS, ids=[n for n, _ in SAMPLE_DOCS])
def test_sample_validates_against_generated_schema(name: str, doc: dict[str, Any]) -> None:
    kind = KINDS[doc["kind"]]
    body = {k: v for k, v in doc.items() if k != "metadata"}
    assert schema_errors(body, openapi_schema(kind)) == []
    assert ("namespace" in doc["metadata"]) == kind.RESOURCE.namespaced


def test_validator_catches_what_the_server_would_reject() -> None:
    schema = openapi_schema(KINDS["AIMService"])
    bad = {
        "spec": {"model": {"ref": ""}, "replicas": -1, "resources": {"limits": {"cpu": "x"}}},
        "bogus": 1,
    }
    errors = "\n".join(schema_errors(bad, schema))
    assert ".spec.model.ref: shorter than 1" in errors
    assert ".spec.replicas: -1 < 0" in errors
    assert ".spec.resources.limits.cpu" in errors
    assert ".bogus: unknown field" in errors
