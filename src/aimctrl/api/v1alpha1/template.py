"""AIMClusterServiceTemplate and AIMServiceTemplate: how (GPU, metric, precision) to run a model.

Both kinds share one spec and one status. ``modelName``, ``metric``, ``precision`` and
``gpuSelector`` are immutable once set: the schema rejects any update that changes, adds or
removes them (CEL transition rules), so a template's identity never drifts from its name.
``status.profile.metadata`` uses the snake_case key ``gpu_count``, as the seed documents it.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import ConfigDict, Field
from pydantic.config import JsonDict

from aimctrl.api.v1alpha1.common import (
    CONDITIONS_LIST_MAP,
    AIMObject,
    APIModel,
    Condition,
    LocalObjectReference,
    PrinterColumn,
    ResolvedReference,
    ResourceInfo,
    ResourceRequirements,
)
from aimctrl.api.v1alpha1.enums import AIMStatus, Metric, Precision

__all__ = [
    "DEFAULT_GPU_RESOURCE",
    "AIMClusterServiceTemplate",
    "AIMServiceTemplate",
    "AIMServiceTemplateSpec",
    "AIMServiceTemplateStatus",
    "GPUSelector",
    "Profile",
    "ProfileMetadata",
]

DEFAULT_GPU_RESOURCE = "amd.com/gpu"


def _immutable(field: str) -> JsonDict:
    return {
        "x-kubernetes-validations": [
            {"rule": "self == oldSelf", "message": f"{field} is immutable"}
        ]
    }


def _presence_immutable(field: str) -> JsonDict:
    # A rule on the field itself only runs when the field exists before and after the update;
    # this one, on the spec, also rejects adding or removing it.
    return {
        "rule": f"has(self.{field}) == has(oldSelf.{field})",
        "message": f"{field} is immutable",
        "fieldPath": f".{field}",
    }


class GPUSelector(APIModel):
    """Which GPUs, and how many, one replica needs."""

    model: str | None = Field(default=None, min_length=1)
    """GPU model, e.g. MI300X."""
    count: int | None = Field(default=None, ge=1, json_schema_extra={"format": "int32"})
    """Number of GPUs per replica (at least 1)."""
    resource_name: str = DEFAULT_GPU_RESOURCE
    """Extended resource name the GPUs are requested by."""


class AIMServiceTemplateSpec(APIModel):
    """Desired state of a template: the model and the deployment profile to run it with."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _presence_immutable("metric"),
                _presence_immutable("precision"),
                _presence_immutable("gpuSelector"),
            ]
        }
    )

    model_name: str = Field(min_length=1, json_schema_extra=_immutable("modelName"))
    """Name of the AIMModel (namespace first) or AIMClusterModel this template runs. Immutable."""
    metric: Metric | None = Field(default=None, json_schema_extra=_immutable("metric"))
    """Optimisation target: latency or throughput. Immutable."""
    precision: Precision | None = Field(default=None, json_schema_extra=_immutable("precision"))
    """Numeric precision: auto, fp4, fp8, fp16, fp32, bf16, int4 or int8. Immutable."""
    gpu_selector: GPUSelector | None = Field(
        default=None, json_schema_extra=_immutable("gpuSelector")
    )
    """GPUs one replica needs. Immutable."""
    profile_id: str | None = None
    """Explicit AIM profile id, passed to the model as AIM_PROFILE_ID."""
    runtime_config_name: str = "default"
    """Name of the runtime config providing credentials and policy."""
    image_pull_secrets: list[LocalObjectReference] | None = None
    """Secrets for pulling the model image."""
    service_account_name: str | None = None
    """Service account the model runs as."""
    resources: ResourceRequirements | None = None
    """Resource requirements; they override the model's and are overridden by the service's."""


class ProfileMetadata(APIModel):
    """The deployment profile a template resolved to."""

    gpu: str | None = None
    """GPU model, e.g. MI300X."""
    gpu_count: int | None = Field(
        default=None, alias="gpu_count", ge=0, json_schema_extra={"format": "int32"}
    )
    """GPUs per replica; services take their GPU request from it when nothing else sets one."""
    metric: str | None = None
    """Optimisation target."""
    precision: str | None = None
    """Numeric precision."""
    engine: str | None = None
    """Inference engine, e.g. vllm."""
    type: str | None = None
    """Profile type, e.g. optimized, unoptimized or preview."""


class Profile(APIModel):
    """The resolved deployment profile."""

    metadata: ProfileMetadata | None = None
    """What the profile runs: GPU, count, metric, precision, engine, type."""


class AIMServiceTemplateStatus(APIModel):
    """Observed state of a template."""

    observed_generation: int | None = Field(
        default=None, ge=0, json_schema_extra={"format": "int64"}
    )
    """The metadata.generation this status was computed from."""
    status: AIMStatus = AIMStatus.PENDING
    """Summary: Pending, Progressing, Ready, Degraded, Failed, or NotAvailable (its GPUs are on
    no schedulable node of the cluster)."""
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=CONDITIONS_LIST_MAP)
    """ModelResolved, RuntimeResolved, GPUAvailable and Ready."""
    resolved_model: ResolvedReference | None = None
    """The model spec.modelName resolved to."""
    resolved_runtime_config: ResolvedReference | None = None
    """The runtime config that was resolved for this template."""
    profile: Profile | None = None
    """The deployment profile of this template."""


_TEMPLATE_COLUMNS = (
    PrinterColumn("Status", "string", ".status.status", "Summary status of the template"),
    PrinterColumn("Model", "string", ".spec.modelName", "Model the template runs"),
    PrinterColumn("Metric", "string", ".spec.metric", "Optimisation target"),
    PrinterColumn("Precision", "string", ".spec.precision", "Numeric precision"),
    PrinterColumn("GPU", "string", ".status.profile.metadata.gpu", "GPU model"),
    PrinterColumn("GPUs", "integer", ".status.profile.metadata.gpu_count", "GPUs per replica"),
    PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
    PrinterColumn(
        "Available",
        "string",
        '.status.conditions[?(@.type=="GPUAvailable")].message',
        "What GPUs the template needs and what the cluster has",
        priority=1,
    ),
)


class AIMClusterServiceTemplate(AIMObject):
    """A cluster-wide way to run a model: GPU, metric and precision."""

    RESOURCE: ClassVar[ResourceInfo] = ResourceInfo(
        plural="aimclusterservicetemplates",
        kind="AIMClusterServiceTemplate",
        namespaced=False,
        short_names=("aimclst",),
        printer_columns=_TEMPLATE_COLUMNS,
    )

    kind: str = "AIMClusterServiceTemplate"
    """Kind is a string value representing the REST resource this object represents."""
    spec: AIMServiceTemplateSpec
    """Desired state of the template."""
    status: AIMServiceTemplateStatus = Field(default_factory=AIMServiceTemplateStatus)
    """Observed state of the template."""


class AIMServiceTemplate(AIMObject):
    """A namespace's way to run a model: GPU, metric and precision."""

    RESOURCE: ClassVar[ResourceInfo] = ResourceInfo(
        plural="aimservicetemplates",
        kind="AIMServiceTemplate",
        namespaced=True,
        short_names=("aimst",),
        printer_columns=_TEMPLATE_COLUMNS,
    )

    kind: str = "AIMServiceTemplate"
    """Kind is a string value representing the REST resource this object represents."""
    spec: AIMServiceTemplateSpec
    """Desired state of the template."""
    status: AIMServiceTemplateStatus = Field(default_factory=AIMServiceTemplateStatus)
    """Observed state of the template."""
