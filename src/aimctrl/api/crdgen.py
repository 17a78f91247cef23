"""CustomResourceDefinitions rendered from the pydantic models of :mod:`aimctrl.api.v1alpha1`.

Guarantees of :func:`custom_resource_definition` (checked by the unit tests):

* the schema is structural: every node has a ``type`` (quantities are the one
  ``x-kubernetes-int-or-string`` exception), no ``$ref`` anywhere (definitions are inlined), and
  optional fields are plain optional properties (pydantic's ``anyOf [X, null]`` collapses to
  ``X``; the API server prunes explicit nulls of such fields);
* descriptions come from class and field docstrings, whitespace-normalised;
* enums, defaults, minimums, patterns, list-map markers and CEL rules declared on the models are
  carried over unchanged; pydantic's ``title`` keys are dropped;
* every kind has the status subresource, its printer columns, short names and the ``aim``/``all``
  categories from ``Kind.RESOURCE``.

The output is plain dicts; YAML rendering is the caller's business. No ``kubernetes`` import.
"""

from __future__ import annotations

import re
from typing import Any

from aimctrl.api.v1alpha1 import AIMObject, PrinterColumn

__all__ = ["custom_resource_definition", "openapi_schema"]

_NULL = {"type": "null"}
_WHITESPACE = re.compile(r"\s+")

_API_VERSION_DESCRIPTION = (
    "APIVersion defines the versioned schema of this representation of an object. Servers should "
    "convert recognized schemas to the latest internal value, and may reject unrecognized values."
)
_KIND_DESCRIPTION = (
    "Kind is a string value representing the REST resource this object represents. Servers may "
    "infer this from the endpoint the client submits requests to. In CamelCase."
)


def _description(text: str) -> str:
    return _WHITESPACE.sub(" ", text.replace("``", "`")).strip()


def _overlay(inner: dict[str, Any], outer: dict[str, Any]) -> dict[str, Any]:
    """``inner`` (a resolved definition) with the field-level keys of ``outer`` on top."""
    merged = dict(inner)
    for key, value in outer.items():
        if key == "x-kubernetes-validations" and key in merged:
            merged[key] = [*merged[key], *value]
        else:
            merged[key] = value
    return merged


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = dict(node)
    node.pop("title", None)
    if "default" in node and node["default"] is None:
        del node["default"]
    ref = node.pop("$ref", None)
    if ref is not None:
        target = defs[ref.rsplit("/", 1)[-1]]
        return _overlay(_structural(target, defs), _structural(node, defs))
    branches = node.get("anyOf")
    if branches is not None and _NULL in branches:
        del node["anyOf"]
        rest = [b for b in branches if b != _NULL]
        if len(rest) == 1:
            return _overlay(_structural(rest[0], defs), _structural(node, defs))
        node["anyOf"] = rest
    if "properties" in node:
        node["properties"] = {
            name: _structural(child, defs) for name, child in sorted(node["properties"].items())
        }
    if "required" in node:
        node["required"] = sorted(node["required"])
    if "items" in node:
        node["items"] = _structural(node["items"], defs)
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = _structural(node["additionalProperties"], defs)
    if "anyOf" in node:
        node["anyOf"] = [_structural(branch, defs) for branch in node["anyOf"]]
    if "description" in node:
        node["description"] = _description(node["description"])
    return node


def openapi_schema(kind: type[AIMObject]) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of ``kind``: structural, inlined, described."""
    raw = kind.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    schema = _structural(raw, defs)
    properties = schema["properties"]
    # The API server owns metadata's schema and allows nothing but the type there (not even a
    # description); apiVersion and kind are never defaulted by ours.
    properties["apiVersion"] = {"type": "string", "description": _API_VERSION_DESCRIPTION}
    properties["kind"] = {"type": "string", "description": _KIND_DESCRIPTION}
    properties["metadata"] = {"type": "object"}
    schema["required"] = sorted(r for r in schema.get("required", []) if r in ("spec",))
    if not schema["required"]:
        del schema["required"]
    return schema


def _printer_column(column: PrinterColumn) -> dict[str, Any]:
    out: dict[str, Any] = {"name": column.name, "type": column.type, "jsonPath": column.json_path}
    if column.description:
        out["description"] = column.description
    if column.priority:
        out["priority"] = column.priority
    return out


def custom_resource_definition(kind: type[AIMObject]) -> dict[str, Any]:
    """The ``apiextensions.k8s.io/v1`` CustomResourceDefinition of ``kind``."""
    info = kind.RESOURCE
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": info.crd_name},
        "spec": {
            "group": info.group,
            "names": {
                "categories": list(info.categories),
                "kind": info.kind,
                "listKind": info.list_kind,
                "plural": info.plural,
                "shortNames": list(info.short_names),
                "singular": info.singular,
            },
            "scope": info.scope,
            "versions": [
                {
                    "name": info.version,
                    "served": True,
                    "storage": True,
                    "additionalPrinterColumns": [_printer_column(c) for c in info.printer_columns],
                    "schema": {"openAPIV3Schema": openapi_schema(kind)},
                    "subresources": {"status": {}},
                }
            ],
        },
    }
