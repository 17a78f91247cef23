"""OCI / Docker distribution documents and platform selection.

Manifests, indexes and image configs are validated with pydantic at the trust boundary; unknown
fields are ignored. :func:`select_platform` picks one entry of an index or manifest list:

* only entries whose ``os``/``architecture`` match (``x86_64`` counts as ``amd64``, ``aarch64`` as
  ``arm64``) are candidates; attestation entries (``unknown/unknown``) never match;
* with a requested variant, an exact variant match wins; otherwise an entry without a variant or
  with the architecture's baseline variant (amd64 ``v1``, arm64 ``v8``, arm ``v7``) wins, then the
  lowest variant; ties keep index order;
* nothing left → :class:`ImageNotFoundError` listing the platforms the index does offer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from aimctrl.discovery.errors import ImageNotFoundError

__all__ = [
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "DOCKER_SCHEMA1",
    "INDEX_TYPES",
    "LINUX_AMD64",
    "MANIFEST_ACCEPT",
    "MANIFEST_TYPES",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "ContainerConfig",
    "Descriptor",
    "ImageConfig",
    "ImageIndex",
    "ImageManifest",
    "Platform",
    "PlatformSpec",
    "select_platform",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_ACCEPT = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])

_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64"}
_BASELINE_VARIANT = {"amd64": "v1", "arm64": "v8", "arm": "v7"}


class _Document(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True)


class PlatformSpec(_Document):
    architecture: str = ""
    os: str = ""
    variant: str | None = None
    os_version: str | None = Field(default=None, alias="os.version")


class Descriptor(_Document):
    media_type: str = Field(default="", alias="mediaType")
    digest: str
    size: int = Field(ge=0)
    platform: PlatformSpec | None = None
    annotations: dict[str, str] | None = None


class ImageManifest(_Document):
    schema_version: int = Field(default=2, alias="schemaVersion")
    media_type: str = Field(default="", alias="mediaType")
    config: Descriptor
    layers: list[Descriptor] = Field(default_factory=list)


class ImageIndex(_Document):
    schema_version: int = Field(default=2, alias="schemaVersion")
    media_type: str = Field(default="", alias="mediaType")
    manifests: list[Descriptor]


class ContainerConfig(_Document):
    labels: dict[str, str] | None = Field(default=None, alias="Labels")


class ImageConfig(_Document):
    architecture: str = ""
    os: str = ""
    variant: str | None = None
    config: ContainerConfig | None = None

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.labels or {}) if self.config is not None else {}


@dataclass(frozen=True)
class Platform:
    """``os/architecture[/variant]``, e.g. ``linux/amd64``."""

    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"platform {text!r} is not os/architecture[/variant]")
        variant = parts[2] if len(parts) == 3 else None
        return cls(os=parts[0], architecture=_arch(parts[1]), variant=variant)


LINUX_AMD64 = Platform()


def _arch(name: str) -> str:
    return _ARCH_ALIASES.get(name.lower(), name.lower())


def select_platform(entries: Sequence[Descriptor], want: Platform = LINUX_AMD64) -> Descriptor:
    """The entry of an index that best matches ``want`` (rules in the module docstring)."""
    candidates = [
        e
        for e in entries
        if e.platform is not None
        and e.platform.os.lower() == want.os
        and _arch(e.platform.architecture) == want.architecture
    ]
    if want.variant is not None:
        exact = [e for e in candidates if e.platform and e.platform.variant == want.variant]
        if exact:
            return exact[0]
    baseline = _BASELINE_VARIANT.get(want.architecture)
    plain = [
        e
        for e in candidates
        if e.platform is not None and e.platform.variant in (None, "", baseline)
    ]
    if plain:
        return plain[0]
    if candidates:
        return sorted(candidates, key=lambda e: _variant_key(e.platform))[0]
    offered = sorted({_describe(e.platform) for e in entries if e.platform is not None})
    raise ImageNotFoundError(
        f"the image index has no {want} entry (it offers: {', '.join(offered) or 'nothing'})"
    )


def _variant_key(spec: PlatformSpec | None) -> tuple[int, str]:
    variant = (spec.variant if spec is not None else None) or ""
    digits = "".join(c for c in variant if c.isdigit())
    return (int(digits) if digits else 0, variant)


def _describe(spec: PlatformSpec) -> str:
    return str(Platform(os=spec.os, architecture=spec.architecture, variant=spec.variant or None))
