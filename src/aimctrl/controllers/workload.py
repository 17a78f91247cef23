"""The workload of an AIMService: a Deployment and a ClusterIP Service (SPEC §6). Pure builders.

Guarantees:

* both objects are named after the AIMService, live in its namespace, carry one controller owner
  reference to it (the garbage collector removes them with the service) and the label
  ``aim.silogen.ai/service=<name>``, which is also the Deployment's (immutable) selector;
* the bodies hold only fields aimctrl owns, ready for server-side apply; they are a pure
  function of :class:`WorkloadInputs`, and :func:`with_applied_hash` stamps that content's
  hash into an annotation so a reconciler can tell "already applied" from the cache alone;
* the profile environment (``AIM_PROFILE_ID``, ``AIM_METRIC``, ``AIM_PRECISION``,
  ``AIM_GPU_COUNT``) holds only known values, and ``spec.env`` of the service overrides it by
  name; the list is sorted by name so that reordering never rolls the Deployment;
* the pod requires a node with the template's GPU model in any of the label forms AMD's node
  labeller writes (:func:`~aimctrl.resolve.gpus.node_affinity`; SPEC §8);
* the container is hardened as far as an inference server allows: no privilege escalation,
  every capability dropped, seccomp ``RuntimeDefault``. It does **not** force
  ``runAsNonRoot`` or a read-only root filesystem: AIM/vLLM images run as root and write model
  and kernel caches under the root filesystem, and would fail to start;
* :func:`deployment_state` calls a Deployment available only when its controller has seen the
  current generation and ``availableReplicas`` and ``updatedReplicas`` reach the replicas
  (or replicas is 0), so a rollout in progress is never reported Ready.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aimctrl.api.v1alpha1.common import API_VERSION
from aimctrl.api.v1alpha1.runtimeconfig import AIMRuntimeConfigSpec
from aimctrl.api.v1alpha1.service import AIMService
from aimctrl.api.v1alpha1.template import DEFAULT_GPU_RESOURCE
from aimctrl.resolve.gpus import Inventory, node_affinity
from aimctrl.resolve.runtimeconfig import resolve_credentials
from aimctrl.resolve.templates import AnyModel, AnyTemplate, model_label_value

__all__ = [
    "ANNOTATION_APPLIED_HASH",
    "CONTAINER_NAME",
    "HTTP_PORT",
    "LABEL_SERVICE",
    "DeploymentState",
    "WorkloadInputs",
    "applied_hash",
    "cluster_ip_service",
    "deployment",
    "deployment_state",
    "merge_env",
    "needs_apply",
    "owned_by",
    "profile_env",
    "with_applied_hash",
    "workload_inputs",
]

LABEL_SERVICE = "aim.silogen.ai/service"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
MANAGED_BY = "aimctrl"
ANNOTATION_APPLIED_HASH = "aim.silogen.ai/applied-hash"
HTTP_PORT = 8000
CONTAINER_NAME = "inference"


@dataclass(frozen=True)
class WorkloadInputs:
    """Everything the workload depends on; equal inputs give byte-equal objects."""

    name: str
    namespace: str
    owner_uid: str
    image: str
    replicas: int
    resources: Mapping[str, Any] = field(default_factory=dict)
    service_account_name: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    env: tuple[Mapping[str, Any], ...] = ()
    gpu_model: str | None = None
    #: Required node affinity for the GPU model (:func:`~aimctrl.resolve.gpus.node_affinity`).
    affinity: Mapping[str, Any] | None = None
    #: Extra labels for the pod template (model and template in use).
    labels: Mapping[str, str] = field(default_factory=dict)


def profile_env(
    *,
    profile_id: str | None,
    metric: str | None,
    precision: str | None,
    gpu_count: int | str | None,
) -> list[dict[str, Any]]:
    """The AIM profile as environment variables, each only when known."""
    values = {
        "AIM_PROFILE_ID": profile_id,
        "AIM_METRIC": metric,
        "AIM_PRECISION": precision,
        "AIM_GPU_COUNT": None if gpu_count in (None, "") else str(gpu_count),
    }
    return [{"name": k, "value": v} for k, v in values.items() if v]


def merge_env(
    base: Iterable[Mapping[str, Any]], overrides: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """``base`` with ``overrides`` replacing entries of the same name; sorted by name."""
    merged: dict[str, dict[str, Any]] = {}
    for entry in (*base, *overrides):
        merged[str(entry["name"])] = copy.deepcopy(dict(entry))
    return [merged[k] for k in sorted(merged)]


def workload_inputs(
    service: AIMService,
    model: AnyModel,
    template: AnyTemplate,
    *,
    runtime: AIMRuntimeConfigSpec,
    resources: Mapping[str, Any],
    fleet: Inventory | None = None,
) -> WorkloadInputs:
    """The workload of ``service`` running ``template`` of ``model``: profile env (template
    spec, else its profile; the GPU count is the resolved GPU limit) under ``spec.env``;
    credentials service > template > model > runtime config, per field."""
    spec = template.spec
    profile = template.status.profile.metadata if template.status.profile else None
    selector = spec.gpu_selector
    gpu_resource = selector.resource_name if selector else DEFAULT_GPU_RESOURCE
    env = profile_env(
        profile_id=spec.profile_id,
        metric=spec.metric.value if spec.metric else (profile.metric if profile else None),
        precision=(
            spec.precision.value if spec.precision else (profile.precision if profile else None)
        ),
        gpu_count=(resources.get("limits") or {}).get(gpu_resource),
    )
    credentials = resolve_credentials(
        (service.spec.service_account_name, service.spec.image_pull_secrets),
        (spec.service_account_name, spec.image_pull_secrets),
        (model.spec.service_account_name, model.spec.image_pull_secrets),
        (runtime.service_account_name, runtime.image_pull_secrets),
    )
    gpu_model = (profile.gpu if profile else None) or (selector.model if selector else None)
    return WorkloadInputs(
        name=service.metadata.name,
        namespace=service.metadata.namespace or "",
        owner_uid=service.metadata.uid or "",
        image=model.spec.image,
        replicas=service.spec.replicas,
        resources=resources,
        service_account_name=credentials.service_account_name,
        image_pull_secrets=credentials.image_pull_secrets,
        env=tuple(merge_env(env, (e.to_dict() for e in service.spec.env or ()))),
        gpu_model=gpu_model,
        affinity=node_affinity(gpu_model, fleet or Inventory()),
        labels={
            "aim.silogen.ai/model": model_label_value(model.metadata.name),
            "aim.silogen.ai/template": template.metadata.name,
        },
    )


def _owner(inputs: WorkloadInputs) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "AIMService",
        "name": inputs.name,
        "uid": inputs.owner_uid,
        "controller": True,
    }


def _labels(inputs: WorkloadInputs) -> dict[str, str]:
    return {
        LABEL_NAME: "aim-service",
        LABEL_COMPONENT: "inference",
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_SERVICE: inputs.name,
    }


def _metadata(inputs: WorkloadInputs) -> dict[str, Any]:
    return {
        "name": inputs.name,
        "namespace": inputs.namespace,
        "labels": _labels(inputs),
        "ownerReferences": [_owner(inputs)],
    }


def _container(inputs: WorkloadInputs) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": inputs.image,
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # Readiness only: a liveness probe would kill a server still downloading its weights.
        "readinessProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
    }
    if inputs.env:
        container["env"] = [dict(e) for e in inputs.env]
    if inputs.resources:
        container["resources"] = copy.deepcopy(dict(inputs.resources))
    return container


def deployment(inputs: WorkloadInputs) -> dict[str, Any]:
    """The Deployment running the model server (apiVersion apps/v1)."""
    pod_labels = {**dict(inputs.labels), **_labels(inputs)}
    pod_spec: dict[str, Any] = {"containers": [_container(inputs)]}
    if inputs.service_account_name:
        pod_spec["serviceAccountName"] = inputs.service_account_name
    if inputs.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in inputs.image_pull_secrets]
    if inputs.affinity:
        pod_spec["affinity"] = copy.deepcopy(dict(inputs.affinity))
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(inputs),
        "spec": {
            "replicas": inputs.replicas,
            "selector": {"matchLabels": {LABEL_SERVICE: inputs.name}},
            "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
        },
    }


def cluster_ip_service(inputs: WorkloadInputs) -> dict[str, Any]:
    """The ClusterIP Service in front of the model server: port 8000 ``http``."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(inputs),
        "spec": {
            "type": "ClusterIP",
            "selector": {LABEL_SERVICE: inputs.name},
            "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def applied_hash(obj: Mapping[str, Any]) -> str:
    """A short hash of an object's content (its own hash annotation excluded)."""
    body = copy.deepcopy(dict(obj))
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    annotations.pop(ANNOTATION_APPLIED_HASH, None)
    if not annotations:
        meta.pop("annotations", None)
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def with_applied_hash(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` with :data:`ANNOTATION_APPLIED_HASH` set to its content hash."""
    out = copy.deepcopy(dict(obj))
    out["metadata"].setdefault("annotations", {})[ANNOTATION_APPLIED_HASH] = applied_hash(obj)
    return out


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    """Whether ``obj``'s controller owner reference points at ``uid``."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == uid and r.get("controller") for r in refs)


def needs_apply(cached: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether ``desired`` (stamped by :func:`with_applied_hash`) differs from the cached
    object: absent, another content hash, or scaled by hand (the service's replicas win)."""
    if cached is None:
        return True
    have = ((cached.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_APPLIED_HASH)
    if have != desired["metadata"]["annotations"][ANNOTATION_APPLIED_HASH]:
        return True
    want_replicas = (desired.get("spec") or {}).get("replicas")
    return want_replicas is not None and (cached.get("spec") or {}).get("replicas") != want_replicas


@dataclass(frozen=True)
class DeploymentState:
    """Whether a Deployment serves its replicas; ``failed`` when it stopped progressing."""

    available: bool
    failed: bool
    message: str


def deployment_state(obj: Mapping[str, Any]) -> DeploymentState:
    """Available, rolling out, or failed (ProgressDeadlineExceeded / ReplicaFailure)."""
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    replicas = int((obj.get("spec") or {}).get("replicas", 1))
    status = obj.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    progressing = conditions.get("Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        message = f"Deployment {name}: {progressing.get('message') or 'progress deadline exceeded'}"
        return DeploymentState(False, True, message)
    failure = conditions.get("ReplicaFailure") or {}
    if failure.get("status") == "True":
        return DeploymentState(False, True, f"Deployment {name}: {failure.get('message', '')}")
    if int(status.get("observedGeneration", 0)) < int(meta.get("generation", 0)):
        return DeploymentState(False, False, f"Deployment {name}: rollout not yet observed")
    available = int(status.get("availableReplicas", 0))
    updated = int(status.get("updatedReplicas", 0))
    if replicas == 0 or (available >= replicas and updated >= replicas):
        return DeploymentState(True, False, f"Deployment {name}: {available}/{replicas} available")
    return DeploymentState(
        False,
        False,
        f"Deployment {name}: {available}/{replicas} replicas available, {updated} updated",
    )
