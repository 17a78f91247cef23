"""Types shared by every AIM kind: the pydantic base, metadata, references, resources, conditions.

Guarantees of :class:`APIModel` (the base of every model in this package):

* it parses the API's camelCase JSON (``imagePullSecrets``) and also accepts the Python field
  names, so tests and controllers can construct objects either way;
* unknown fields from the server are ignored, so a newer CRD never breaks an older controller;
* :meth:`APIModel.to_dict` serialises back to camelCase JSON with ``None`` fields left out and
  defaults written out, so a dumped object means exactly what the parsed one meant;
* field docstrings are field descriptions; the CRD generator turns them into the schema's
  ``description`` (what ``kubectl explain`` shows).

Quantities stay strings (``"500m"``, ``"64Gi"``); integers from the wire are accepted and turned
into their decimal string. Timestamps are aware datetimes and serialise as RFC 3339 seconds in
UTC (``2024-05-01T10:00:00Z``), like ``metav1.Time``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict
from pydantic.functional_serializers import PlainSerializer
from pydantic.json_schema import WithJsonSchema

from aimctrl.api.v1alpha1.enums import ConditionStatus, ResolvedScope

__all__ = [
    "API_VERSION",
    "CATEGORIES",
    "CONDITIONS_LIST_MAP",
    "GROUP",
    "VERSION",
    "AIMObject",
    "APIModel",
    "Condition",
    "ConfigMapKeySelector",
    "EnvVar",
    "EnvVarSource",
    "LocalObjectReference",
    "ObjectFieldSelector",
    "ObjectMeta",
    "OwnerReference",
    "PrinterColumn",
    "Quantity",
    "ResolvedReference",
    "ResourceFieldSelector",
    "ResourceInfo",
    "ResourceRequirements",
    "SecretKeySelector",
    "Time",
]

GROUP = "aim.silogen.ai"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORIES = ("aim", "all")
CONDITIONS_LIST_MAP: JsonDict = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}
"""Schema extension for a ``conditions`` list: at most one entry per ``type``."""

# Kubernetes' quantity grammar (k8s.io/apimachinery/pkg/api/resource), as controller-gen emits it.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_QUANTITY_RE = re.compile(QUANTITY_PATTERN)
# metav1.Condition's validation, as the upstream types declare it.
_CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


def _quantity_from_wire(value: object) -> object:
    # The API accepts `cpu: 8` as well as `cpu: "8"`; we keep the string form.
    if isinstance(value, bool):
        raise ValueError("a quantity is a number or a string, not a boolean")
    if isinstance(value, int | float):
        return str(value)
    return value


def _check_quantity(value: str) -> str:
    if not _QUANTITY_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity")
    return value


Quantity = Annotated[
    str,
    BeforeValidator(_quantity_from_wire),
    AfterValidator(_check_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]
"""A Kubernetes resource quantity (``"4"``, ``"500m"``, ``"64Gi"``), kept as its string form."""


def _format_time(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Time = Annotated[
    datetime,
    PlainSerializer(_format_time, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""A ``metav1.Time``: RFC 3339 with second precision, written in UTC."""


class APIModel(BaseModel):
    """Base of every AIM API model: camelCase on the wire, unknown fields ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
        use_attribute_docstrings=True,
    )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the API server accepts: camelCase keys, ``None`` fields omitted."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


@dataclass(frozen=True, slots=True)
class PrinterColumn:
    """One ``additionalPrinterColumns`` entry of a CRD (what ``kubectl get`` shows)."""

    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """REST identity and CRD presentation of one AIM kind.

    ``resource`` is the ``(group, version, plural, kind, namespaced)`` tuple that
    ``aimctrl.kube.resources.Resource`` is built from.
    """

    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...]
    printer_columns: tuple[PrinterColumn, ...]
    categories: tuple[str, ...] = CATEGORIES
    group: str = GROUP
    version: str = VERSION

    @property
    def resource(self) -> tuple[str, str, str, str, bool]:
        return (self.group, self.version, self.plural, self.kind, self.namespaced)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"

    @property
    def scope(self) -> str:
        return "Namespaced" if self.namespaced else "Cluster"


class OwnerReference(APIModel):
    """An owner of an object; the garbage collector deletes the object with its controller."""

    api_version: str
    """API version of the owner."""
    kind: str
    """Kind of the owner."""
    name: str
    """Name of the owner."""
    uid: str
    """UID of the owner."""
    controller: bool | None = None
    """True on the one owner that manages this object."""
    block_owner_deletion: bool | None = None
    """When true, foreground deletion of the owner waits for this object."""


class ObjectMeta(APIModel):
    """The subset of ``metav1.ObjectMeta`` aimctrl reads and writes."""

    name: str = ""
    """Object name, unique within its namespace (or the cluster for cluster-scoped kinds)."""
    namespace: str | None = None
    """Namespace of the object; absent for cluster-scoped kinds."""
    uid: str | None = None
    """Server-assigned unique id."""
    resource_version: str | None = None
    """Opaque version for optimistic concurrency."""
    generation: int | None = None
    """Incremented by the server on every change to the spec."""
    creation_timestamp: Time | None = None
    """When the object was created."""
    deletion_timestamp: Time | None = None
    """When deletion was requested; set while finalizers run."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels of the object."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Annotations of the object."""
    owner_references: list[OwnerReference] = Field(default_factory=list)
    """Objects this one belongs to."""
    finalizers: list[str] = Field(default_factory=list)
    """Finalizers that must be removed before the object is deleted."""


class AIMObject(APIModel):
    """A top-level AIM object: ``apiVersion``, ``kind``, ``metadata``, then spec and status."""

    RESOURCE: ClassVar[ResourceInfo]

    api_version: str = API_VERSION
    """APIVersion defines the versioned schema of this representation of an object."""
    kind: str
    """Kind is a string value representing the REST resource this object represents."""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    """Standard object metadata."""


class LocalObjectReference(APIModel):
    """A reference to an object by name in the same namespace."""

    name: str = Field(min_length=1)
    """Name of the referent."""


class ResourceRequirements(APIModel):
    """Compute resources (``core/v1 ResourceRequirements``), quantities as strings."""

    limits: dict[str, Quantity] | None = None
    """Maximum amount of each resource allowed, by resource name (e.g. ``cpu``, ``amd.com/gpu``)."""
    requests: dict[str, Quantity] | None = None
    """Minimum amount of each resource required, by resource name."""


class SecretKeySelector(APIModel):
    """Selects a key of a Secret in the same namespace."""

    name: str = Field(min_length=1)
    """Name of the Secret."""
    key: str = Field(min_length=1)
    """Key in the Secret."""
    optional: bool | None = None
    """Whether the Secret or its key may be absent."""


class ConfigMapKeySelector(APIModel):
    """Selects a key of a ConfigMap in the same namespace."""

    name: str = Field(min_length=1)
    """Name of the ConfigMap."""
    key: str = Field(min_length=1)
    """Key in the ConfigMap."""
    optional: bool | None = None
    """Whether the ConfigMap or its key may be absent."""


class ObjectFieldSelector(APIModel):
    """Selects a field of the pod (downward API)."""

    api_version: str | None = None
    """Version of the schema the field path is written in (default ``v1``)."""
    field_path: str = Field(min_length=1)
    """Path of the field, e.g. ``metadata.namespace``."""


class ResourceFieldSelector(APIModel):
    """Selects a resource limit or request of a container (downward API)."""

    container_name: str | None = None
    """Container name; defaults to the container the variable is set in."""
    resource: str = Field(min_length=1)
    """Resource to select, e.g. ``limits.memory``."""
    divisor: Quantity | None = None
    """Output unit of the exposed value (default ``1``)."""


class EnvVarSource(APIModel):
    """Where an environment variable's value comes from; set exactly one field."""

    secret_key_ref: SecretKeySelector | None = None
    """A key of a Secret."""
    config_map_key_ref: ConfigMapKeySelector | None = None
    """A key of a ConfigMap."""
    field_ref: ObjectFieldSelector | None = None
    """A field of the pod."""
    resource_field_ref: ResourceFieldSelector | None = None
    """A resource of the container."""


class EnvVar(APIModel):
    """An environment variable for the model's container (``core/v1 EnvVar``)."""

    name: str = Field(min_length=1)
    """Name of the variable."""
    value: str | None = None
    """Literal value; ``$(VAR)`` references are expanded by the kubelet."""
    value_from: EnvVarSource | None = None
    """Source of the value when ``value`` is not set."""


class ResolvedReference(APIModel):
    """Which object a reference resolved to, and from which scope."""

    name: str
    """Name of the resolved object."""
    namespace: str | None = None
    """Namespace of the resolved object; absent for cluster-scoped objects."""
    scope: ResolvedScope | None = None
    """Namespace, Cluster, or Merged (a namespaced object merged over a cluster one)."""
    kind: str | None = None
    """Kind of the resolved object."""
    uid: str | None = None
    """UID of the resolved object (of the namespaced one when merged)."""


class Condition(APIModel):
    """One aspect of an object's current state, in ``metav1.Condition`` shape."""

    model_config = ConfigDict(
        json_schema_extra={
            "required": ["lastTransitionTime", "message", "reason", "status", "type"]
        }
    )

    type: str = Field(min_length=1, max_length=316, pattern=_CONDITION_TYPE_PATTERN)
    """Type of condition in CamelCase, e.g. ``Ready``."""
    status: ConditionStatus
    """Status of the condition: True, False or Unknown."""
    observed_generation: int | None = Field(
        default=None, ge=0, json_schema_extra={"format": "int64"}
    )
    """The ``metadata.generation`` the condition was set from."""
    last_transition_time: Time | None = None
    """When the condition last changed status."""
    reason: str = Field(min_length=1, max_length=1024, pattern=_REASON_PATTERN)
    """Machine-readable CamelCase reason for the condition's last transition."""
    message: str = Field(default="", max_length=32768)
    """Human-readable details about the transition."""
