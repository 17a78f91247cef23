"""One discovery run: image reference → registry → labels → :class:`DiscoveryResult`.

``discover`` is the single function both modes call (the ``aimctrl discover`` Job and the
controller's inline mode), so both produce the same result. It either returns a complete result or
raises a :class:`DiscoveryError` whose ``reason`` is one of :class:`Reason` and whose message says
what to fix. It reads manifests and the config blob only; layers are never fetched.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Collection

from pydantic import Field

from aimctrl.discovery.dockerconfig import DockerConfig
from aimctrl.discovery.errors import DiscoveryError, Reason
from aimctrl.discovery.labels import CamelModel, ImageMetadata, RecommendedDeployment, parse_labels
from aimctrl.discovery.oci import LINUX_AMD64, Platform
from aimctrl.discovery.reference import parse_reference
from aimctrl.discovery.registry import RegistryClient
from aimctrl.machinery.clock import REAL_CLOCK, Clock

__all__ = [
    "DiscoveryError",
    "DiscoveryResult",
    "GPURequirements",
    "ModelSource",
    "Reason",
    "derive_gpu",
    "discover",
]


class ModelSource(CamelModel):
    name: str | None = None
    source_uri: str


class GPURequirements(CamelModel):
    """GPU models the image was tuned for (first-seen order) and the smallest GPU count."""

    models: list[str] = Field(default_factory=list)
    min_count: int | None = None


class DiscoveryResult(CamelModel):
    """What one discovery run found; the shape of ``status.discoveredMetadata`` plus metadata."""

    image: str
    digest: str
    platform: str
    discovered_at: str
    image_metadata: ImageMetadata
    model_sources: list[ModelSource] = Field(default_factory=list)
    gpu: GPURequirements = Field(default_factory=GPURequirements)


def discover(
    image: str,
    *,
    credentials: DockerConfig | None = None,
    client: RegistryClient | None = None,
    platform: Platform = LINUX_AMD64,
    insecure_registries: Collection[str] = (),
    clock: Clock = REAL_CLOCK,
    stop: threading.Event | None = None,
) -> DiscoveryResult:
    """Discover ``image``; raise :class:`DiscoveryError` (with a reason) on any failure.

    ``client`` is reused when given (its own credentials apply); otherwise a client is made with
    ``credentials`` and ``insecure_registries`` and closed afterwards. Setting ``stop`` cuts
    retry back-offs short (the manager's shutdown).
    """
    ref = parse_reference(image)
    owned = client is None
    registry = client or RegistryClient(
        credentials=credentials, insecure_registries=insecure_registries, clock=clock, stop=stop
    )
    try:
        resolved = registry.resolve(ref, platform=platform)
    finally:
        if owned:
            registry.close()
    metadata = parse_labels(resolved.labels)
    sources = []
    if metadata.model.source:
        sources.append(
            ModelSource(name=metadata.model.canonical_name, source_uri=metadata.model.source)
        )
    return DiscoveryResult(
        image=image,
        digest=resolved.digest,
        platform=str(resolved.platform),
        discovered_at=_rfc3339(clock.wall()),
        image_metadata=metadata,
        model_sources=sources,
        gpu=derive_gpu(metadata.model.recommended_deployments),
    )


def derive_gpu(deployments: list[RecommendedDeployment]) -> GPURequirements:
    models: list[str] = []
    for d in deployments:
        if d.gpu_model and d.gpu_model not in models:
            models.append(d.gpu_model)
    counts = [d.gpu_count for d in deployments if d.gpu_count]
    return GPURequirements(models=models, min_count=min(counts) if counts else None)


def _rfc3339(epoch: float) -> str:
    moment = dt.datetime.fromtimestamp(int(epoch), tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
