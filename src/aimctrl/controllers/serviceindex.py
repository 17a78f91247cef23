"""Which AIMServices an object concerns: the indexes on the shared AIMService informer and the
map functions of the service controller.

Guarantees:

* a service is found under every model name it may use (``spec.model.ref``,
  ``status.resolvedModel.name`` and, for ``spec.model.image``, the auto-created model's name),
  every template name (``spec.templateRef``, ``status.resolvedTemplate.name``), its image and its
  runtime config name (unset: ``default``), so a change to any of those objects wakes it;
* a namespaced object maps only to services of its namespace, a cluster-scoped one to services
  of every namespace; each service is named once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from aimctrl.machinery.handler import request_for
from aimctrl.machinery.reconcile import Request
from aimctrl.machinery.store import IndexFunc, Object
from aimctrl.resolve.models import auto_model_name

__all__ = [
    "INDEX_IMAGE",
    "INDEX_MODEL",
    "INDEX_RUNTIME_CONFIG",
    "INDEX_TEMPLATE",
    "ByIndex",
    "dig",
    "for_model",
    "for_runtime_config",
    "for_template",
    "service_indexers",
]

INDEX_MODEL = "service-by-model"
"""Services by the model names they may use: ``spec.model.ref``, ``status.resolvedModel.name``
and, for ``spec.model.image``, the auto-created model's name."""
INDEX_IMAGE = "service-by-image"
INDEX_TEMPLATE = "service-by-template"
INDEX_RUNTIME_CONFIG = "service-by-runtime-config"

ByIndex = Callable[[str, str], list[Object]]
"""A lister's ``by_index(index, value)``."""


def dig(obj: Object, *path: str) -> Any:
    """``obj[path[0]][path[1]]…``, or ``None`` where a step is missing or not a mapping."""
    cur: Any = obj
    for key in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    return cur


def _index_models(obj: Object) -> list[str]:
    names = {dig(obj, "spec", "model", "ref"), dig(obj, "status", "resolvedModel", "name")}
    image = dig(obj, "spec", "model", "image")
    if image:
        names.add(auto_model_name(image))
    return sorted(n for n in names if n)


def _index_images(obj: Object) -> list[str]:
    image = dig(obj, "spec", "model", "image")
    return [image.strip()] if image else []


def _index_templates(obj: Object) -> list[str]:
    names = {dig(obj, "spec", "templateRef"), dig(obj, "status", "resolvedTemplate", "name")}
    return sorted(n for n in names if n)


def _index_runtime_configs(obj: Object) -> list[str]:
    return [dig(obj, "spec", "runtimeConfigName") or "default"]


def service_indexers() -> dict[str, IndexFunc]:
    """The indexes the service reconciler adds to the shared AIMService informer."""
    return {
        INDEX_MODEL: _index_models,
        INDEX_IMAGE: _index_images,
        INDEX_TEMPLATE: _index_templates,
        INDEX_RUNTIME_CONFIG: _index_runtime_configs,
    }


def _in_namespace(objs: Iterable[Object], namespace: str | None) -> list[Request]:
    seen: dict[Request, None] = {}
    for obj in objs:
        req = request_for(obj)
        if not namespace or req.namespace == namespace:
            seen[req] = None
    return list(seen)


def for_model(by_index: ByIndex) -> Callable[[Object], list[Request]]:
    """Model → the services naming it, or naming its image."""

    def requests(obj: Object) -> list[Request]:
        image = (dig(obj, "spec", "image") or "").strip()
        users = by_index(INDEX_MODEL, dig(obj, "metadata", "name") or "")
        users += by_index(INDEX_IMAGE, image) if image else []
        return _in_namespace(users, dig(obj, "metadata", "namespace"))

    return requests


def for_template(by_index: ByIndex) -> Callable[[Object], list[Request]]:
    """Template → the services naming it, or using its model."""

    def requests(obj: Object) -> list[Request]:
        users = by_index(INDEX_TEMPLATE, dig(obj, "metadata", "name") or "")
        users += by_index(INDEX_MODEL, dig(obj, "spec", "modelName") or "")
        return _in_namespace(users, dig(obj, "metadata", "namespace"))

    return requests


def for_runtime_config(by_index: ByIndex) -> Callable[[Object], list[Request]]:
    """Runtime config → the services naming it (unset: ``default``)."""

    def requests(obj: Object) -> list[Request]:
        users = by_index(INDEX_RUNTIME_CONFIG, dig(obj, "metadata", "name") or "")
        return _in_namespace(users, dig(obj, "metadata", "namespace"))

    return requests
