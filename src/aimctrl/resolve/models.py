"""Model lookup and auto-creation for services (SPEC §6): pure functions, no I/O.

Guarantees:

* a namespaced ``AIMModel`` shadows an ``AIMClusterModel`` of the same name in its namespace;
  a cluster-scoped consumer (namespace ``""``) sees cluster models only;
* :func:`find_model_by_image` matches the image string exactly, prefers the service's
  namespace, and breaks ties deterministically (oldest ``creationTimestamp``, then name);
  models being deleted are never chosen;
* :func:`auto_model_name` is a pure function of the image string, so concurrent reconciles
  of services naming the same image create the same object (AlreadyExists means success).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

from aimctrl.api.v1alpha1.common import (
    API_VERSION,
    AIMObject,
    LocalObjectReference,
    ResolvedReference,
)
from aimctrl.api.v1alpha1.enums import CreationScope, ResolvedScope
from aimctrl.api.v1alpha1.model import AIMClusterModel, AIMModel

__all__ = [
    "LABEL_AUTO_CREATED",
    "FoundModel",
    "auto_model_name",
    "auto_model_object",
    "find_model_by_image",
    "lookup_model",
    "resolved_reference",
]

LABEL_AUTO_CREATED = "aim.silogen.ai/auto-created"
_AUTO_PREFIX = "auto-"
_HASH_CHARS = 12
_NEVER = datetime.max.replace(tzinfo=UTC)

GetNamespacedModel = Callable[[str, str], AIMModel | None]
"""(namespace, name) → the cached AIMModel, or None."""
GetClusterModel = Callable[[str], AIMClusterModel | None]
"""name → the cached AIMClusterModel, or None."""

_M = TypeVar("_M", AIMModel, AIMClusterModel)


class FoundModel(NamedTuple):
    """A model found by name or image: its kind (``AIMModel`` / ``AIMClusterModel``) and itself."""

    kind: str
    model: AIMModel | AIMClusterModel


def lookup_model(
    name: str,
    namespace: str,
    *,
    get_namespaced: GetNamespacedModel,
    get_cluster: GetClusterModel,
) -> FoundModel | None:
    """``AIMModel`` ``namespace/name`` if it exists, else ``AIMClusterModel`` ``name``.

    ``namespace == ""`` (a cluster-scoped consumer) looks at cluster models only.
    """
    if namespace:
        namespaced = get_namespaced(namespace, name)
        if namespaced is not None:
            return FoundModel(AIMModel.RESOURCE.kind, namespaced)
    cluster = get_cluster(name)
    if cluster is not None:
        return FoundModel(AIMClusterModel.RESOURCE.kind, cluster)
    return None


def _oldest(models: Iterable[_M]) -> _M | None:
    live = [m for m in models if m.metadata.deletion_timestamp is None]
    return min(
        live,
        key=lambda m: (m.metadata.creation_timestamp or _NEVER, m.metadata.name),
        default=None,
    )


def find_model_by_image(
    image: str,
    namespace: str,
    *,
    namespaced_models: Iterable[AIMModel],
    cluster_models: Iterable[AIMClusterModel],
) -> FoundModel | None:
    """A model whose ``spec.image`` equals ``image`` exactly: the service's namespace first,
    then cluster models; among several, the oldest (then the lowest name) wins.

    ``namespaced_models`` may hold models of any namespace; only ``namespace``'s are considered.
    """
    wanted = image.strip()
    namespaced = _oldest(
        m for m in namespaced_models if m.metadata.namespace == namespace and m.spec.image == wanted
    )
    if namespaced is not None:
        return FoundModel(AIMModel.RESOURCE.kind, namespaced)
    cluster = _oldest(m for m in cluster_models if m.spec.image == wanted)
    if cluster is not None:
        return FoundModel(AIMClusterModel.RESOURCE.kind, cluster)
    return None


def auto_model_name(image: str) -> str:
    """``auto-`` + the first 12 hex chars of SHA-256 of the image string (as written)."""
    return _AUTO_PREFIX + hashlib.sha256(image.encode()).hexdigest()[:_HASH_CHARS]


def auto_model_object(
    image: str,
    *,
    scope: CreationScope,
    namespace: str,
    auto_discovery: bool,
    image_pull_secrets: list[LocalObjectReference] | None = None,
    service_account_name: str | None = None,
) -> dict[str, Any]:
    """The model to create for a service that names ``image`` and finds no model.

    ``scope`` Namespace → ``AIMModel`` in ``namespace``; Cluster → ``AIMClusterModel`` (no
    owner: a model outlives the services using it). Labelled ``aim.silogen.ai/auto-created``;
    ``discovery.enabled`` is ``auto_discovery`` and templates are auto-created. Credentials are
    copied only when given: the caller passes the service's for a namespaced model (they live in
    the same namespace) and none for a cluster model (its secrets live in the operator namespace).
    """
    if scope == CreationScope.NAMESPACE and not namespace:
        raise ValueError("a namespaced auto-created model needs a namespace")
    kind = AIMModel if scope == CreationScope.NAMESPACE else AIMClusterModel
    metadata: dict[str, Any] = {
        "name": auto_model_name(image),
        "labels": {LABEL_AUTO_CREATED: "true"},
    }
    if kind is AIMModel:
        metadata["namespace"] = namespace
    spec: dict[str, Any] = {
        "image": image,
        "discovery": {"enabled": auto_discovery, "autoCreateTemplates": True},
    }
    if image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s.name} for s in image_pull_secrets]
    if service_account_name:
        spec["serviceAccountName"] = service_account_name
    return {
        "apiVersion": API_VERSION,
        "kind": kind.RESOURCE.kind,
        "metadata": metadata,
        "spec": spec,
    }


def resolved_reference(obj: AIMObject) -> ResolvedReference:
    """A ``status.resolved*`` reference to ``obj``: scope Namespace or Cluster by its kind."""
    namespaced = type(obj).RESOURCE.namespaced
    return ResolvedReference(
        name=obj.metadata.name,
        namespace=obj.metadata.namespace if namespaced else None,
        scope=ResolvedScope.NAMESPACE if namespaced else ResolvedScope.CLUSTER,
        kind=obj.kind,
        uid=obj.metadata.uid,
    )
