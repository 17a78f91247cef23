"""The owned error hierarchy of image discovery.

Every failure that discovery can report is a :class:`DiscoveryError` carrying a :class:`Reason`
(the value written to the model's ``MetadataExtracted`` condition) and a message a user can act on.
Messages never contain credentials or tokens; registry response bodies are cut to a few hundred
characters before they are quoted.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "DiscoveryError",
    "ImageNotFoundError",
    "InvalidReferenceError",
    "LabelParseError",
    "MetadataTooLargeError",
    "MissingLabelError",
    "PullSecretError",
    "Reason",
    "RegistryAuthError",
    "RegistryProtocolError",
    "RegistryUnavailableError",
    "quote_body",
]

_BODY_LIMIT = 300


class Reason(StrEnum):
    """Why discovery failed; the values are condition reasons."""

    IMAGE_PULL_AUTH_FAILURE = "ImagePullAuthFailure"
    IMAGE_NOT_FOUND = "ImageNotFound"
    METADATA_EXTRACTION_FAILED = "MetadataExtractionFailed"
    REGISTRY_UNAVAILABLE = "RegistryUnavailable"
    INVALID_IMAGE_REFERENCE = "InvalidImageReference"
    METADATA_TOO_LARGE = "MetadataTooLarge"


class DiscoveryError(Exception):
    """Base of every discovery failure: ``reason`` for machines, ``message`` for people."""

    reason: Reason = Reason.METADATA_EXTRACTION_FAILED

    def __init__(self, message: str, *, reason: Reason | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reason={self.reason.value!r}, message={self.message!r})"


class InvalidReferenceError(DiscoveryError, ValueError):
    """The image reference string is not a valid ``[registry/]repository[:tag][@digest]``."""

    reason = Reason.INVALID_IMAGE_REFERENCE


class PullSecretError(DiscoveryError):
    """A pull secret could not be read or is not a valid ``.dockerconfigjson`` payload."""

    reason = Reason.IMAGE_PULL_AUTH_FAILURE


class RegistryAuthError(DiscoveryError):
    """The registry (or its token service) answered 401 or 403."""

    reason = Reason.IMAGE_PULL_AUTH_FAILURE


class ImageNotFoundError(DiscoveryError):
    """The repository, tag, digest or linux/amd64 platform does not exist."""

    reason = Reason.IMAGE_NOT_FOUND


class RegistryUnavailableError(DiscoveryError):
    """Transient faults (5xx, 429, timeouts, refused connections) persisted through all retries."""

    reason = Reason.REGISTRY_UNAVAILABLE


class RegistryProtocolError(DiscoveryError):
    """The registry answered something unusable: bad JSON, digest mismatch, oversized document."""

    reason = Reason.METADATA_EXTRACTION_FAILED


class MissingLabelError(DiscoveryError):
    """A required label is absent (or empty) under every accepted name."""

    reason = Reason.METADATA_EXTRACTION_FAILED

    def __init__(self, label: str, *, alternatives: tuple[str, ...] = ()) -> None:
        also = f" (also accepted: {', '.join(alternatives)})" if alternatives else ""
        super().__init__(f"required image label {label!r} is missing or empty{also}")
        self.label = label


class LabelParseError(DiscoveryError):
    """A label value cannot be parsed; ``position`` says where (line/column/offset or entry)."""

    reason = Reason.METADATA_EXTRACTION_FAILED

    def __init__(self, label: str, *, position: str, detail: str) -> None:
        super().__init__(f"image label {label!r} cannot be parsed at {position}: {detail}")
        self.label = label
        self.position = position
        self.detail = detail


class MetadataTooLargeError(DiscoveryError):
    """The discovery result cannot be encoded within the termination-message limit."""

    reason = Reason.METADATA_TOO_LARGE


def quote_body(body: bytes | str) -> str:
    """A registry response body cut to a loggable size (never used for secrets)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())
    return text if len(text) <= _BODY_LIMIT else text[: _BODY_LIMIT - 1] + "…"
