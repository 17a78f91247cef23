"""AIMClusterRuntimeConfig and AIMRuntimeConfig: credentials and model-creation policy.

Both kinds share one spec. Consumers name a config (default ``default``); a namespaced config is
merged field by field over the cluster config of the same name. So that a field left unset in a
namespaced config can inherit the cluster config's value, nothing here is defaulted by the schema:
unset stays ``None`` and :attr:`RuntimeConfigModelPolicy.effective_creation_scope` /
:attr:`RuntimeConfigModelPolicy.effective_auto_discovery` apply the documented defaults
(``Namespace``, ``true``) after merging.
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
    ResourceInfo,
)
from aimctrl.api.v1alpha1.enums import CreationScope

__all__ = [
    "DEFAULT_AUTO_DISCOVERY",
    "DEFAULT_CREATION_SCOPE",
    "AIMClusterRuntimeConfig",
    "AIMRuntimeConfig",
    "AIMRuntimeConfigSpec",
    "AIMRuntimeConfigStatus",
    "RuntimeConfigModelPolicy",
]

DEFAULT_CREATION_SCOPE = CreationScope.NAMESPACE
DEFAULT_AUTO_DISCOVERY = True


class RuntimeConfigModelPolicy(APIModel):
    """How models are created for services that name an image."""

    creation_scope: CreationScope | None = None
    """Scope of auto-created models: Namespace (an AIMModel in the service's namespace) or
    Cluster (an AIMClusterModel). Unset: inherited from the cluster config, else Namespace."""
    auto_discovery: bool | None = None
    """Run discovery for auto-created models and for models that leave discovery.enabled unset.
    Unset: inherited from the cluster config, else true."""

    @property
    def effective_creation_scope(self) -> CreationScope:
        """``creation_scope`` with its default applied."""
        return self.creation_scope or DEFAULT_CREATION_SCOPE

    @property
    def effective_auto_discovery(self) -> bool:
        """``auto_discovery`` with its default applied."""
        return DEFAULT_AUTO_DISCOVERY if self.auto_discovery is None else self.auto_discovery


class AIMRuntimeConfigSpec(APIModel):
    """Credentials and policy for the models, templates and services that name this config."""

    service_account_name: str | None = None
    """Service account for discovery and model servers, unless the consumer names its own. For
    cluster configs it lives in the operator namespace."""
    image_pull_secrets: list[LocalObjectReference] | None = None
    """Secrets for pulling model images, unless the consumer names its own. For cluster configs
    they live in the operator namespace."""
    model: RuntimeConfigModelPolicy | None = None
    """Model creation and discovery policy."""


class AIMRuntimeConfigStatus(APIModel):
    """Observed state of a runtime config (runtime configs are inputs; nothing reconciles them
    yet)."""

    observed_generation: int | None = Field(
        default=None, ge=0, json_schema_extra={"format": "int64"}
    )
    """The metadata.generation this status was computed from."""
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=CONDITIONS_LIST_MAP)
    """Conditions of the runtime config."""


_CONFIG_COLUMNS = (
    PrinterColumn(
        "ServiceAccount", "string", ".spec.serviceAccountName", "Service account for consumers"
    ),
    PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
)


class AIMClusterRuntimeConfig(AIMObject):
    """Cluster-wide credentials and policy; namespaced configs of the same name override it."""

    RESOURCE: ClassVar[ResourceInfo] = ResourceInfo(
        plural="aimclusterruntimeconfigs",
        kind="AIMClusterRuntimeConfig",
        namespaced=False,
        short_names=("aimcrcfg",),
        printer_columns=_CONFIG_COLUMNS,
    )

    kind: str = "AIMClusterRuntimeConfig"
    """Kind is a string value representing the REST resource this object represents."""
    spec: AIMRuntimeConfigSpec = Field(default_factory=AIMRuntimeConfigSpec)
    """Credentials and policy."""
    status: AIMRuntimeConfigStatus = Field(default_factory=AIMRuntimeConfigStatus)
    """Observed state of the runtime config."""


class AIMRuntimeConfig(AIMObject):
    """A namespace's credentials and policy, merged over the cluster config of the same name."""

    RESOURCE: ClassVar[ResourceInfo] = ResourceInfo(
        plural="aimruntimeconfigs",
        kind="AIMRuntimeConfig",
        namespaced=True,
        short_names=("aimrcfg",),
        printer_columns=_CONFIG_COLUMNS,
    )

    kind: str = "AIMRuntimeConfig"
    """Kind is a string value representing the REST resource this object represents."""
    spec: AIMRuntimeConfigSpec = Field(default_factory=AIMRuntimeConfigSpec)
    """Credentials and policy."""
    status: AIMRuntimeConfigStatus = Field(default_factory=AIMRuntimeConfigStatus)
    """Observed state of the runtime config."""
