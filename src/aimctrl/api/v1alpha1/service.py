"""AIMService: run a model, named by ``ref`` or by ``image``, as a workload.

The schema guarantees exactly one of ``spec.model.ref`` and ``spec.model.image`` (a CEL rule on
the spec, reported at ``spec.model``). The status records every resolution step: model,
template (with the candidates considered and why), runtime config and merged resources.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import ConfigDict, Field

from aimctrl.api.v1alpha1.common import (
    CONDITIONS_LIST_MAP,
    AIMObject,
    APIModel,
    Condition,
    EnvVar,
    LocalObjectReference,
    PrinterColumn,
    ResolvedReference,
    ResourceInfo,
    ResourceRequirements,
)
from aimctrl.api.v1alpha1.enums import AIMStatus, Metric, Precision, ResolvedScope

__all__ = [
    "AIMService",
    "AIMServiceModel",
    "AIMServiceSpec",
    "AIMServiceStatus",
    "TemplateCandidate",
    "TemplateSelector",
]


class AIMServiceModel(APIModel):
    """The model to serve: exactly one of ref and image."""

    ref: str | None = Field(default=None, min_length=1)
    """Name of an AIMModel in the service's namespace, else of an AIMClusterModel."""
    image: str | None = Field(default=None, min_length=1, pattern=r"^\S+$")
    """Container image; a model with this image is used, or created per the runtime config."""


class TemplateSelector(APIModel):
    """Narrows automatic template selection: only templates matching every field set here."""

    metric: Metric | None = None
    """Only templates with this optimisation target: latency or throughput."""
    precision: Precision | None = None
    """Only templates with this numeric precision."""
    gpu_model: str | None = Field(default=None, min_length=1, max_length=64)
    """Only templates for this GPU model, e.g. MI300X (compared case-insensitively)."""


class AIMServiceSpec(APIModel):
    """Desired state of a service."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.model) || (has(self.model.ref) != has(self.model.image))",
                    "message": "exactly one of model.ref or model.image must be specified",
                    "fieldPath": ".model",
                    "reason": "FieldValueInvalid",
                }
            ]
        }
    )

    model: AIMServiceModel
    """The model to serve, by name (ref) or by container image (image)."""
    template_ref: str | None = Field(default=None, min_length=1)
    """Template to use (namespace template first, then cluster template); unset: the model's
    defaultServiceTemplate, else the best Ready template of the model."""
    template_selector: TemplateSelector | None = None
    """Filters automatic selection (ignored when templateRef or the model's
    defaultServiceTemplate names the template)."""
    runtime_config_name: str = "default"
    """Name of the runtime config providing credentials and model-creation policy."""
    replicas: int = Field(default=1, ge=0, json_schema_extra={"format": "int32"})
    """Number of replicas of the model server."""
    resources: ResourceRequirements | None = None
    """Resource requirements; they override the template's and the model's per resource."""
    image_pull_secrets: list[LocalObjectReference] | None = None
    """Secrets for pulling the model image; copied into an auto-created model."""
    service_account_name: str | None = None
    """Service account the model server runs as; copied into an auto-created model."""
    env: list[EnvVar] | None = Field(
        default=None,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
    )
    """Extra environment variables for the model server."""


class TemplateCandidate(APIModel):
    """A template considered during automatic selection."""

    name: str
    """Name of the template."""
    scope: ResolvedScope | None = None
    """Namespace or Cluster."""
    chosen: bool = False
    """Whether this candidate was selected."""
    reason: str | None = None
    """Why it was chosen or rejected."""


class AIMServiceStatus(APIModel):
    """Observed state of a service."""

    observed_generation: int | None = Field(
        default=None, ge=0, json_schema_extra={"format": "int64"}
    )
    """The metadata.generation this status was computed from."""
    status: AIMStatus = AIMStatus.PENDING
    """Summary: Pending, Progressing, Ready, Degraded or Failed."""
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=CONDITIONS_LIST_MAP)
    """ModelResolved, TemplateResolved, RuntimeResolved, WorkloadReady and Ready."""
    resolved_model: ResolvedReference | None = None
    """The model spec.model resolved to (found or created)."""
    resolved_template: ResolvedReference | None = None
    """The template in use."""
    resolved_runtime_config: ResolvedReference | None = None
    """The runtime config that was resolved for this service."""
    resolved_resources: ResourceRequirements | None = None
    """Resources after merging service, template and model, with the GPU count filled in."""
    template_candidates: list[TemplateCandidate] | None = None
    """Templates considered by automatic selection, in preference order."""


class AIMService(AIMObject):
    """A model served in a namespace: resolved to a model, a template and a workload."""

    RESOURCE: ClassVar[ResourceInfo] = ResourceInfo(
        plural="aimservices",
        kind="AIMService",
        namespaced=True,
        short_names=("aimsvc",),
        printer_columns=(
            PrinterColumn("Status", "string", ".status.status", "Summary status of the service"),
            PrinterColumn("Model", "string", ".status.resolvedModel.name", "Resolved model"),
            PrinterColumn("Template", "string", ".status.resolvedTemplate.name", "Template in use"),
            PrinterColumn("Replicas", "integer", ".spec.replicas", "Desired replicas"),
            PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
        ),
    )

    kind: str = "AIMService"
    """Kind is a string value representing the REST resource this object represents."""
    spec: AIMServiceSpec
    """Desired state of the service."""
    status: AIMServiceStatus = Field(default_factory=AIMServiceStatus)
    """Observed state of the service."""
