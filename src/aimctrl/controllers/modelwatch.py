"""What wakes a model: its index and the map functions of the model discovery controllers.

Handlers only enqueue; these functions read the shared caches and return requests. Guarantees:

* a discovery Job or pod maps to the model named in its labels, and only for the kind given;
* a runtime config maps to the models naming it (``spec.runtimeConfigName``, default
  ``default``, index :data:`INDEX_RUNTIME_CONFIG`); a namespaced config only to its namespace's;
* a Secret maps to the models of its scope (its namespace's models; for cluster models, the
  operator namespace's Secrets only) whose status waits for a pull secret.
"""

from __future__ import annotations

from collections.abc import Callable

from aimctrl.api.v1alpha1.enums import Reason
from aimctrl.controllers.discoveryjob import model_key_of
from aimctrl.machinery.lister import Lister
from aimctrl.machinery.reconcile import Request
from aimctrl.machinery.store import Object

__all__ = [
    "INDEX_RUNTIME_CONFIG",
    "MapFunc",
    "by_discovery_object",
    "by_runtime_config",
    "runtime_config_index",
    "waiting_for_secret",
]

INDEX_RUNTIME_CONFIG = "spec.runtimeConfigName"

MapFunc = Callable[[Object], list[Request]]


def runtime_config_index(obj: Object) -> list[str]:
    """Models by ``spec.runtimeConfigName`` (unset: ``default``)."""
    return [str((obj.get("spec") or {}).get("runtimeConfigName") or "default")]


def by_discovery_object(kind: str) -> MapFunc:
    """Job/pod → the model of ``kind`` it was created for (from its labels and annotations)."""

    def requests(obj: Object) -> list[Request]:
        key = model_key_of(obj)
        if key is None or key.kind != kind:
            return []
        return [Request(namespace=key.namespace, name=key.name)]

    return requests


def by_runtime_config(models: Lister, *, namespaced: bool) -> MapFunc:
    """Runtime config → the models naming it (a namespaced config: only its namespace's)."""

    def requests(obj: Object) -> list[Request]:
        meta = obj.get("metadata") or {}
        found = models.by_index(INDEX_RUNTIME_CONFIG, str(meta.get("name") or ""))
        namespace = meta.get("namespace") or ""
        out = []
        for model in found:
            model_meta = model.get("metadata") or {}
            if namespaced and (model_meta.get("namespace") or "") != namespace:
                continue
            out.append(Request(model_meta.get("namespace") or "", str(model_meta.get("name"))))
        return out

    return requests


def waiting_for_secret(models: Lister, *, cluster_scoped: bool, operator_namespace: str) -> MapFunc:
    """Secret → the models of its scope that wait for a pull secret."""

    def requests(obj: Object) -> list[Request]:
        namespace = (obj.get("metadata") or {}).get("namespace") or ""
        if cluster_scoped:
            if namespace != operator_namespace:
                return []
            candidates = models.list()
        else:
            candidates = models.list(namespace)
        out = []
        for model in candidates:
            conditions = (model.get("status") or {}).get("conditions") or ()
            if any(c.get("reason") == Reason.PULL_SECRET_MISSING for c in conditions):
                meta = model["metadata"]
                out.append(Request(meta.get("namespace") or "", meta["name"]))
        return out

    return requests
