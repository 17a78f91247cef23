"""Image discovery: reference parsing, registry client, label parsing — no kubernetes imports.

The entry point is :func:`discover`; the Job transports its outcome with
:func:`encode_termination_message` / :func:`decode_termination_message`.
"""

from aimctrl.discovery.discover import DiscoveryResult, GPURequirements, ModelSource, discover
from aimctrl.discovery.dockerconfig import (
    Credentials,
    DockerConfig,
    load_pull_secrets_dir,
    parse_dockerconfigjson,
)
from aimctrl.discovery.errors import DiscoveryError, Reason
from aimctrl.discovery.labels import ImageMetadata, RecommendedDeployment, parse_labels
from aimctrl.discovery.reference import ImageReference, parse_reference
from aimctrl.discovery.registry import RegistryClient, RetryPolicy
from aimctrl.discovery.termination import (
    DiscoveryFailure,
    decode_termination_message,
    encode_termination_message,
)

__all__ = [
    "Credentials",
    "DiscoveryError",
    "DiscoveryFailure",
    "DiscoveryResult",
    "DockerConfig",
    "GPURequirements",
    "ImageMetadata",
    "ImageReference",
    "ModelSource",
    "Reason",
    "RecommendedDeployment",
    "RegistryClient",
    "RetryPolicy",
    "decode_termination_message",
    "discover",
    "encode_termination_message",
    "load_pull_secrets_dir",
    "parse_dockerconfigjson",
    "parse_labels",
    "parse_reference",
]
