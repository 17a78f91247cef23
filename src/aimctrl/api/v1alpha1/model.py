"""AIMClusterModel and AIMModel: a model name mapped to an AIM container image.

Both kinds share one spec and one status; they differ only in scope. ``status.imageMetadata`` is
what the image declares (its labels); ``status.discoveredMetadata`` is what the last discovery run
found and derived, with provenance (image, digest, platform, time, Job).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

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
    Time,
)
from aimctrl.api.v1alpha1.enums import AIMStatus

__all__ = [
    "AIMClusterModel",
    "AIMModel",
    "AIMModelSpec",
    "AIMModelStatus",
    "DiscoveredGPU",
    "DiscoveredMetadata",
    "DiscoveredModelSource",
    "DiscoverySpec",
    "ImageMetadata",
    "ModelMetadata",
    "OCIMetadata",
    "RecommendedDeployment",
]


class DiscoverySpec(APIModel):
    """Controls metadata extraction from the image and automatic template generation."""

    enabled: bool | None = None
    """Run discovery for this model. Unset: the runtime config's model.autoDiscovery decides
    (default true)."""
    auto_create_templates: bool = True
    """Create service templates from the recommended deployments the image publishes."""


class AIMModelSpec(APIModel):
    """Desired state of a model: the image that implements it and how to treat it."""

    image: str = Field(min_length=1, pattern=r"^\S+$")
    """Container image implementing this model (e.g. ghcr.io/silogen/aim-llama:0.7.0). Discovery
    inspects this image; changing it triggers a new discovery."""
    discovery: DiscoverySpec = Field(
        default_factory=DiscoverySpec, json_schema_extra={"default": {}}
    )
    """Metadata extraction and automatic template generation."""
    default_service_template: str | None = None
    """Template used when a service names this model without a template."""
    runtime_config_name: str = "default"
    """Name of the AIMRuntimeConfig / AIMClusterRuntimeConfig providing credentials and policy."""
    image_pull_secrets: list[LocalObjectReference] | None = None
    """Secrets for pulling the image during discovery and inference. They live in the model's
    namespace, or in the operator namespace for cluster models."""
    service_account_name: str | None = None
    """Service account for discovery Jobs; unset means the runtime config's, else the namespace's
    default account."""
    resources: ResourceRequirements | None = None
    """Baseline resource requirements; templates and services override them per resource."""


class RecommendedDeployment(APIModel):
    """One deployment configuration the image recommends (from its deployments label)."""

    gpu_model: str | None = None
    """GPU model, e.g. MI300X."""
    gpu_count: int | None = Field(default=None, ge=0, json_schema_extra={"format": "int32"})
    """Number of GPUs per replica."""
    precision: str | None = None
    """Numeric precision, e.g. fp8."""
    metric: str | None = None
    """Optimisation target, e.g. latency or throughput."""
    description: str | None = None
    """Human-readable description of the deployment."""
    profile_id: str | None = None
    """Explicit AIM profile id, passed to the model as AIM_PROFILE_ID."""


class ModelMetadata(APIModel):
    """Model facts the image declares in its labels."""

    canonical_name: str | None = None
    """Canonical model name (label model.canonicalName)."""
    source: str | None = None
    """Where the model comes from (label model.source)."""
    tags: list[str] | None = None
    """Tags (label model.tags, comma separated)."""
    versions: list[str] | None = None
    """Versions (label model.versions, comma separated)."""
    variants: list[str] | None = None
    """Variants (label model.variants, comma separated)."""
    hf_token_required: bool | None = None
    """Whether a Hugging Face token is needed to fetch the weights (label hfToken.required)."""
    title: str | None = None
    """Human-readable title (label title)."""
    description_full: str | None = None
    """Long description (label description.full)."""
    release_notes: str | None = None
    """Release notes (label release.notes)."""
    recommended_deployments: list[RecommendedDeployment] | None = None
    """Deployment configurations recommended by the image (label model.deployments or
    model.recommendedDeployments)."""


class OCIMetadata(APIModel):
    """The image's standard org.opencontainers.image.* labels."""

    title: str | None = None
    """org.opencontainers.image.title."""
    description: str | None = None
    """org.opencontainers.image.description."""
    licenses: str | None = None
    """org.opencontainers.image.licenses (SPDX expression)."""
    vendor: str | None = None
    """org.opencontainers.image.vendor."""
    authors: str | None = None
    """org.opencontainers.image.authors."""
    source: str | None = None
    """org.opencontainers.image.source."""
    documentation: str | None = None
    """org.opencontainers.image.documentation."""
    created: str | None = None
    """org.opencontainers.image.created (as written in the label)."""
    revision: str | None = None
    """org.opencontainers.image.revision."""
    version: str | None = None
    """org.opencontainers.image.version."""


class ImageMetadata(APIModel):
    """What the image declares about itself."""

    model: ModelMetadata | None = None
    """AIM model labels."""
    oci: OCIMetadata | None = None
    """OCI standard labels."""


class DiscoveredModelSource(APIModel):
    """A model artifact the image downloads at start-up."""

    name: str | None = None
    """Name of the source."""
    source_uri: str = Field(min_length=1)
    """URI of the artifact, e.g. hf://meta-llama/Llama-3.1-8B-Instruct."""


class DiscoveredGPU(APIModel):
    """GPU needs derived from the recommended deployments."""

    models: list[str] | None = None
    """GPU models the image has deployments for."""
    min_count: int | None = Field(default=None, ge=0, json_schema_extra={"format": "int32"})
    """Smallest GPU count of any recommended deployment."""


class DiscoveredMetadata(APIModel):
    """What the last discovery run found, with provenance."""

    image: str = Field(min_length=1)
    """The spec.image this discovery ran for; a different spec.image triggers a new run."""
    digest: str | None = None
    """Digest of the manifest that was inspected."""
    platform: str | None = None
    """Platform of the inspected manifest, e.g. linux/amd64."""
    discovered_at: Time | None = None
    """When discovery finished."""
    job_name: str | None = None
    """Discovery Job that produced this result (empty in inline mode)."""
    rediscover_token: str | None = None
    """Value of the aim.silogen.ai/rediscover annotation this run answered."""
    model_sources: list[DiscoveredModelSource] | None = None
    """Model artifacts the image downloads."""
    gpu: DiscoveredGPU | None = None
    """GPU needs derived from the recommended deployments."""


class AIMModelStatus(APIModel):
    """Observed state of a model."""

    observed_generation: int | None = Field(
        default=None, ge=0, json_schema_extra={"format": "int64"}
    )
    """The metadata.generation this status was computed from."""
    status: AIMStatus = AIMStatus.PENDING
    """Summary: Pending, Progressing, Ready, Degraded, Failed, or NotAvailable (none of its
    templates can run on the cluster's GPUs)."""
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=CONDITIONS_LIST_MAP)
    """RuntimeResolved, MetadataExtracted, TemplatesAutoGenerated and Ready."""
    resolved_runtime_config: ResolvedReference | None = None
    """The runtime config that was resolved for this model."""
    image_metadata: ImageMetadata | None = None
    """Metadata the image declares in its labels."""
    discovered_metadata: DiscoveredMetadata | None = None
    """What the last discovery run found and derived."""


_MODEL_COLUMNS = (
    PrinterColumn("Status", "string", ".status.status", "Summary status of the model"),
    PrinterColumn("Image", "string", ".spec.image", "Container image of the model"),
    PrinterColumn(
        "Model",
        "string",
        ".status.imageMetadata.model.canonicalName",
        "Canonical model name declared by the image",
        priority=1,
    ),
    PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
)


class AIMClusterModel(AIMObject):
    """A cluster-wide catalog entry mapping a model name to an AIM container image."""

    RESOURCE: ClassVar[ResourceInfo] = ResourceInfo(
        plural="aimclustermodels",
        kind="AIMClusterModel",
        namespaced=False,
        short_names=("aimclmdl",),
        printer_columns=_MODEL_COLUMNS,
    )

    kind: str = "AIMClusterModel"
    """Kind is a string value representing the REST resource this object represents."""
    spec: AIMModelSpec
    """Desired state of the model."""
    status: AIMModelStatus = Field(default_factory=AIMModelStatus)
    """Observed state of the model."""


class AIMModel(AIMObject):
    """A namespace's catalog entry mapping a model name to an AIM container image; it takes
    precedence over an AIMClusterModel of the same name in its namespace."""

    RESOURCE: ClassVar[ResourceInfo] = ResourceInfo(
        plural="aimmodels",
        kind="AIMModel",
        namespaced=True,
        short_names=("aimmdl",),
        printer_columns=_MODEL_COLUMNS,
    )

    kind: str = "AIMModel"
    """Kind is a string value representing the REST resource this object represents."""
    spec: AIMModelSpec
    """Desired state of the model."""
    status: AIMModelStatus = Field(default_factory=AIMModelStatus)
    """Observed state of the model."""
