"""The discovery Job of a model: its name and its complete object (pure functions, no I/O).

Guarantees:

* :func:`discovery_job_name` is an RFC 1123 label (``[a-z0-9-]``, alphanumeric at both ends, at
  most 63 characters) ending in ``-discovery``. It is ``<model>-discovery`` whenever that is a
  valid label — the name the seed's troubleshooting commands use
  (``kubectl -n <ns> logs -l job-name=<model>-discovery``). A namespaced model living in the
  operator namespace gets ``<model>-ns-discovery`` instead, so it never collides with the Job of
  the cluster model of the same name there. A name that is too long or holds dots is cut and
  given 8 hex characters of the SHA-256 of the full model name and scope, so distinct models keep
  distinct Job names.
* :func:`build_discovery_job` returns a complete ``batch/v1`` Job that runs ``aimctrl discover``
  once (``backoffLimit: 0``, ``restartPolicy: Never``) in a hardened pod: non-root (65532),
  read-only root file system, no privilege escalation, all capabilities dropped, seccomp
  ``RuntimeDefault``, no service-account token, small requests and limits. The model's resolved
  pull secrets are mounted read-only under :data:`PULL_SECRETS_DIR` as ``<NN>-<secret>`` (``NN``
  = precedence, so the CLI's name-ordered merge honours it); ``--pull-secrets-dir`` is passed
  only when there is a secret (the CLI rejects a missing directory). The Job is controlled by
  the model (a cluster-scoped owner is allowed for a namespaced Job).
* The Job and its pod carry :data:`DISCOVERY_JOB_LABEL` (= the Job name; the pod label the test
  harness's pod runner and the controller's pod informer select on) and the model's kind, name
  and namespace (:func:`model_key_of` reads them back), and the Job records the image and the
  rediscover token it was created for (:data:`ANNOTATION_IMAGE`, :data:`ANNOTATION_TOKEN`), so a
  result is never attributed to a different image or request.
* :func:`read_job_outcome` reads only pods owned by the Job's uid; a structured failure keeps its
  reason (``RegistryUnavailable`` is transient); a Job that failed without a structured message
  (deadline, crash, unreadable message) is transient, never a final verdict on the image.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aimctrl.discovery.discover import DiscoveryResult
from aimctrl.discovery.errors import Reason
from aimctrl.discovery.termination import (
    DiscoveryFailure,
    TerminationMessageError,
    decode_termination_message,
)
from aimctrl.resolve.templates import LABEL_MODEL, model_label_value

__all__ = [
    "ANNOTATION_IMAGE",
    "ANNOTATION_MODEL_NAME",
    "ANNOTATION_MODEL_NAMESPACE",
    "ANNOTATION_TOKEN",
    "CONTAINER_NAME",
    "DISCOVERY_JOB_LABEL",
    "LABEL_MODEL_KIND",
    "PULL_SECRETS_DIR",
    "TERMINATION_MESSAGE_PATH",
    "DiscoveryJobSpec",
    "JobFailed",
    "JobOutcome",
    "JobRunning",
    "JobSucceeded",
    "ModelKey",
    "build_discovery_job",
    "discovery_job_name",
    "model_key_of",
    "read_job_outcome",
]

DISCOVERY_JOB_LABEL = "aim.silogen.ai/discovery-job"
"""On the Job and its pod; value: the Job name. The harness's pod runner selects on its key."""
LABEL_MODEL_KIND = "aim.silogen.ai/model-kind"
ANNOTATION_MODEL_NAME = "aim.silogen.ai/model-name"
ANNOTATION_MODEL_NAMESPACE = "aim.silogen.ai/model-namespace"
ANNOTATION_IMAGE = "aim.silogen.ai/discovery-image"
ANNOTATION_TOKEN = "aim.silogen.ai/rediscover-token"  # noqa: S105 - an annotation key, not a secret
PULL_SECRETS_DIR = "/var/run/aimctrl/pull-secrets"
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
CONTAINER_NAME = "discover"

_MAX_NAME = 63
_SUFFIX = "-discovery"
_NS_SUFFIX = "-ns-discovery"
_HASH_CHARS = 8
_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_INVALID = re.compile(r"[^a-z0-9-]+")
_NON_ROOT_UID = 65532
_SECRET_MODE = 0o444
_RESOURCES = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"cpu": "500m", "memory": "256Mi"},
}


def discovery_job_name(
    model_name: str, *, cluster_scoped: bool, in_operator_namespace: bool
) -> str:
    """The Job name for a model (see the module docstring).

    ``in_operator_namespace``: the Job lands in the operator namespace (always true for a
    cluster model; true for a namespaced model only when it lives there).
    """
    suffix = _NS_SUFFIX if (in_operator_namespace and not cluster_scoped) else _SUFFIX
    plain = f"{model_name}{suffix}"
    if len(plain) <= _MAX_NAME and _LABEL_RE.match(plain):
        return plain
    scope = "cluster" if cluster_scoped else "namespace"
    digest = hashlib.sha256(f"{scope}/{model_name}".encode()).hexdigest()[:_HASH_CHARS]
    room = _MAX_NAME - len(suffix) - _HASH_CHARS - 1
    stem = _INVALID.sub("-", model_name.lower())[:room].strip("-")
    return f"{stem}-{digest}{suffix}" if stem else f"{digest}{suffix}"


@dataclass(frozen=True)
class ModelKey:
    """Which model a discovery Job or pod belongs to (namespace ``""`` for cluster models)."""

    kind: str
    namespace: str
    name: str


def model_key_of(obj: Mapping[str, Any]) -> ModelKey | None:
    """The model a discovery Job or pod (or pod template) was created for, from its metadata."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    kind = labels.get(LABEL_MODEL_KIND)
    name = annotations.get(ANNOTATION_MODEL_NAME)
    if not kind or not name:
        return None
    return ModelKey(kind=kind, namespace=annotations.get(ANNOTATION_MODEL_NAMESPACE, ""), name=name)


@dataclass(frozen=True)
class DiscoveryJobSpec:
    """Everything a discovery Job depends on."""

    job_name: str
    namespace: str
    model_api_version: str
    model_kind: str
    model_name: str
    model_namespace: str
    model_uid: str
    image: str
    """The model image to discover."""
    discovery_image: str
    """The image the Job runs (aimctrl's own)."""
    rediscover_token: str = ""
    pull_secrets: Sequence[str] = ()
    service_account_name: str | None = None
    insecure_registries: Sequence[str] = ()
    active_deadline_seconds: int = 300
    ttl_seconds_after_finished: int = 3600


def _identity(spec: DiscoveryJobSpec) -> tuple[dict[str, str], dict[str, str]]:
    labels = {
        "app.kubernetes.io/name": "aimctrl-discovery",
        "app.kubernetes.io/component": "discovery",
        "app.kubernetes.io/managed-by": "aimctrl",
        DISCOVERY_JOB_LABEL: spec.job_name,
        LABEL_MODEL: model_label_value(spec.model_name),
        LABEL_MODEL_KIND: spec.model_kind,
    }
    annotations = {ANNOTATION_MODEL_NAME: spec.model_name}
    if spec.model_namespace:
        annotations[ANNOTATION_MODEL_NAMESPACE] = spec.model_namespace
    return labels, annotations


def _secret_dir(index: int, secret: str) -> str:
    return f"{PULL_SECRETS_DIR}/{index:02d}-{secret}"


def _container(spec: DiscoveryJobSpec) -> dict[str, Any]:
    args = ["discover", spec.image]
    if spec.pull_secrets:
        # Only with secrets: the CLI rejects a pull-secrets directory that does not exist.
        args.append(f"--pull-secrets-dir={PULL_SECRETS_DIR}")
    args += [f"--termination-message-path={TERMINATION_MESSAGE_PATH}", "--log-format=json"]
    args += [f"--insecure-registry={registry}" for registry in spec.insecure_registries]
    return {
        "name": CONTAINER_NAME,
        "image": spec.discovery_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["aimctrl"],
        "args": args,
        "resources": {k: dict(v) for k, v in _RESOURCES.items()},
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "File",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": _NON_ROOT_UID,
            "runAsGroup": _NON_ROOT_UID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": f"pull-secret-{i}", "mountPath": _secret_dir(i, s), "readOnly": True}
            for i, s in enumerate(spec.pull_secrets)
        ],
    }


def build_discovery_job(spec: DiscoveryJobSpec) -> dict[str, Any]:
    """The complete Job object for ``spec`` (ready for ``create``)."""
    labels, annotations = _identity(spec)
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": _NON_ROOT_UID,
            "runAsGroup": _NON_ROOT_UID,
            "fsGroup": _NON_ROOT_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(spec)],
        "volumes": [
            {
                "name": f"pull-secret-{i}",
                "secret": {"secretName": secret, "defaultMode": _SECRET_MODE},
            }
            for i, secret in enumerate(spec.pull_secrets)
        ],
    }
    if spec.service_account_name:
        pod_spec["serviceAccountName"] = spec.service_account_name
    job_annotations = {
        **annotations,
        ANNOTATION_IMAGE: spec.image,
        ANNOTATION_TOKEN: spec.rediscover_token,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": spec.job_name,
            "namespace": spec.namespace,
            "labels": dict(labels),
            "annotations": job_annotations,
            "ownerReferences": [
                {
                    "apiVersion": spec.model_api_version,
                    "kind": spec.model_kind,
                    "name": spec.model_name,
                    "uid": spec.model_uid,
                    "controller": True,
                }
            ],
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": spec.active_deadline_seconds,
            "ttlSecondsAfterFinished": spec.ttl_seconds_after_finished,
            "template": {
                "metadata": {"labels": dict(labels), "annotations": dict(annotations)},
                "spec": pod_spec,
            },
        },
    }


# -- reading a finished Job -------------------------------------------------------------------


@dataclass(frozen=True)
class JobRunning:
    """The Job has not finished (or its pod has not reported yet)."""

    message: str


@dataclass(frozen=True)
class JobSucceeded:
    result: DiscoveryResult


@dataclass(frozen=True)
class JobFailed:
    """A failed run: ``transient`` ones are retried with backoff, the others are final."""

    reason: str
    message: str
    transient: bool


JobOutcome = JobRunning | JobSucceeded | JobFailed


def _owned_by(pod: Mapping[str, Any], job_uid: str) -> bool:
    refs = (pod.get("metadata") or {}).get("ownerReferences") or ()
    return any(ref.get("uid") == job_uid for ref in refs)


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or ():
        if status.get("name") == CONTAINER_NAME:
            terminated = (status.get("state") or {}).get("terminated")
            return terminated if isinstance(terminated, Mapping) else None
    return None


def _job_failure(job: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for condition in (job.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return dict(condition)
    return None


def read_job_outcome(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> JobOutcome:
    """The outcome of ``job`` from its pods' termination messages and its conditions.

    Only pods owned by this very Job (by uid) count, so a pod of an earlier Job of the same name
    is never read. A result for another image than :data:`ANNOTATION_IMAGE` is rejected.
    """
    meta = job.get("metadata") or {}
    job_uid = str(meta.get("uid") or "")
    image = (meta.get("annotations") or {}).get(ANNOTATION_IMAGE, "")
    for pod in pods:
        if not _owned_by(pod, job_uid):
            continue
        terminated = _terminated(pod)
        if terminated is None:
            continue
        return _from_termination(terminated, image)
    failure = _job_failure(job)
    if failure is not None:
        detail = failure.get("message") or failure.get("reason") or "no details"
        return JobFailed(
            reason=Reason.REGISTRY_UNAVAILABLE.value,
            message=f"discovery Job failed without a result ({failure.get('reason')}): {detail}",
            transient=True,
        )
    return JobRunning(message="discovery Job is running")


def _from_termination(terminated: Mapping[str, Any], image: str) -> JobOutcome:
    text = str(terminated.get("message") or "")
    exit_code = terminated.get("exitCode")
    try:
        decoded = decode_termination_message(text) if text.strip() else None
    except TerminationMessageError as e:
        decoded = None
        text = str(e)
    if isinstance(decoded, DiscoveryResult):
        if decoded.image != image:
            return JobFailed(
                reason=Reason.REGISTRY_UNAVAILABLE.value,
                message=f"discovery Job reported image {decoded.image!r}, expected {image!r}",
                transient=True,
            )
        return JobSucceeded(result=decoded)
    if isinstance(decoded, DiscoveryFailure):
        return JobFailed(
            reason=decoded.reason.value,
            message=decoded.message,
            transient=decoded.reason == Reason.REGISTRY_UNAVAILABLE,
        )
    why = f": {text[:200]}" if text.strip() else ""
    return JobFailed(
        reason=Reason.REGISTRY_UNAVAILABLE.value,
        message=(
            f"discovery container exited with code {exit_code} ({terminated.get('reason')}) "
            f"without a structured result{why}"
        ),
        transient=True,
    )
