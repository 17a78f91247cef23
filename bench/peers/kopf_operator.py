"""The convergence benchmark's peer: the same model → labels → status + templates flow as kopf
handlers, run with ``kopf run`` against the same apiserver.

* ``AIMClusterModel`` created → :func:`aimctrl.discovery.discover` reads the image's labels over
  the registry API (a fresh registry client per model, as aimctrl's inline mode does) → one
  ``AIMClusterServiceTemplate`` per recommended deployment, built with aimctrl's own pure
  :func:`~aimctrl.resolve.templates.plan_templates` (same names, labels, owner references, spec)
  and created with the official client → the model's status (``status``, ``imageMetadata``,
  ``discoveredMetadata``, ``observedGeneration``) through kopf's patch;
* ``AIMClusterServiceTemplate`` created → its status ``Ready`` through kopf's patch.

kopf's defaults are kept (annotations diff-base and progress storage, event posting, the default
thread pool for sync handlers), since that is what a kopf operator does out of the box.

    KUBECONFIG=... .venv/bin/kopf run --standalone --all-namespaces bench/peers/kopf_operator.py
"""

from __future__ import annotations

from typing import Any

import kopf
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from aimctrl.api.v1alpha1.model import AIMClusterModel
from aimctrl.discovery.discover import DiscoveryError, discover
from aimctrl.resolve.templates import plan_templates

GROUP, VERSION = "aim.silogen.ai", "v1alpha1"
_api: k8s.CustomObjectsApi | None = None


def _objects() -> k8s.CustomObjectsApi:
    global _api
    if _api is None:
        k8s_config.load_kube_config()  # type: ignore[no-untyped-call]
        _api = k8s.CustomObjectsApi()
    return _api


@kopf.on.create(GROUP, VERSION, "aimclustermodels")  # type: ignore[arg-type]
def model_created(body: Any, spec: Any, patch: Any, **_: Any) -> None:
    try:
        result = discover(spec["image"])
    except DiscoveryError as e:
        patch.status["status"] = "Failed"
        raise kopf.PermanentError(f"{e.reason}: {e.message}") from e
    metadata = result.image_metadata.model_dump(by_alias=True, exclude_none=True)
    model = AIMClusterModel.model_validate({**dict(body), "status": {"imageMetadata": metadata}})
    api = _objects()
    for template in plan_templates(model).templates:
        try:
            api.create_cluster_custom_object(GROUP, VERSION, "aimclusterservicetemplates", template)
        except k8s.ApiException as e:
            if e.status != 409:
                raise
    patch.status["observedGeneration"] = body["metadata"].get("generation")
    patch.status["status"] = "Ready"
    patch.status["imageMetadata"] = metadata
    patch.status["discoveredMetadata"] = {
        "image": spec["image"],
        "digest": result.digest,
        "platform": result.platform,
        "discoveredAt": result.discovered_at,
    }


@kopf.on.create(GROUP, VERSION, "aimclusterservicetemplates")  # type: ignore[arg-type]
def template_created(body: Any, patch: Any, **_: Any) -> None:
    patch.status["observedGeneration"] = body["metadata"].get("generation")
    patch.status["status"] = "Ready"
