"""Image reference parsing with Docker's defaults.

``parse_reference`` accepts ``[registry[:port]/]path[:tag][@algorithm:hex]`` and guarantees:

* a first path component is a registry only if it contains ``.`` or ``:`` or is ``localhost``;
  otherwise the registry is ``docker.io`` and a single-component path gets ``library/``;
* the docker.io aliases (``index.docker.io``, ``registry-1.docker.io``) normalise to ``docker.io``,
  whose API endpoint is ``registry-1.docker.io``;
* without tag and digest the tag is ``latest``; with a digest the digest decides what is fetched;
* anything else raises :class:`InvalidReferenceError` saying what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aimctrl.discovery.errors import InvalidReferenceError

__all__ = [
    "DOCKER_HUB",
    "DOCKER_HUB_ENDPOINT",
    "ImageReference",
    "is_loopback_registry",
    "parse_reference",
]

DOCKER_HUB = "docker.io"
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"
_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

_MAX_LENGTH = 4096
_MAX_REPOSITORY = 255
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_TAG = re.compile(r"[\w][\w.-]{0,127}\Z")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+\Z")
_DIGEST_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}
_HOST_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_HOST = re.compile(
    rf"(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[[0-9a-fA-F:.]+\])(?::(?P<port>[0-9]+))?\Z"
)


@dataclass(frozen=True)
class ImageReference:
    """A parsed image reference; ``registry`` is normalised, ``tag`` is None only with a digest."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def endpoint(self) -> str:
        """``host[:port]`` to send API requests to."""
        return DOCKER_HUB_ENDPOINT if self.registry == DOCKER_HUB else self.registry

    @property
    def reference(self) -> str:
        """What to put after ``/manifests/``: the digest if there is one, else the tag."""
        if self.digest is not None:
            return self.digest
        return self.tag or "latest"

    @property
    def is_loopback(self) -> bool:
        return is_loopback_registry(self.registry)

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out


def is_loopback_registry(registry: str) -> bool:
    """True for ``localhost``, ``127.x.x.x`` and ``[::1]``, with or without a port."""
    host = registry if registry.endswith("]") else registry.rsplit(":", 1)[0]
    host = host.lower()
    return host in {"localhost", "[::1]", "::1"} or host.startswith("127.")


def parse_reference(text: str) -> ImageReference:
    """Parse ``text`` into an :class:`ImageReference` or raise :class:`InvalidReferenceError`."""
    if not text or not text.strip():
        raise InvalidReferenceError("image reference is empty")
    if text != text.strip() or any(c.isspace() for c in text):
        raise InvalidReferenceError(f"image reference {text!r} contains whitespace")
    if len(text) > _MAX_LENGTH:
        raise InvalidReferenceError(f"image reference is longer than {_MAX_LENGTH} characters")
    remainder, digest = _split_digest(text)
    remainder, tag = _split_tag(text, remainder)
    registry, repository = _split_registry(text, remainder)
    if tag is None and digest is None:
        tag = "latest"
    return ImageReference(registry=registry, repository=repository, tag=tag, digest=digest)


def _split_digest(text: str) -> tuple[str, str | None]:
    if "@" not in text:
        return text, None
    remainder, digest = text.split("@", 1)
    if not _DIGEST.match(digest):
        raise InvalidReferenceError(f"image reference {text!r}: invalid digest {digest!r}")
    algorithm, hex_part = digest.split(":", 1)
    expected = _DIGEST_HEX_LENGTH.get(algorithm)
    if expected is not None and not re.fullmatch(rf"[a-f0-9]{{{expected}}}", hex_part):
        raise InvalidReferenceError(
            f"image reference {text!r}: a {algorithm} digest needs {expected} lowercase hex digits"
        )
    return remainder, digest


def _split_tag(text: str, remainder: str) -> tuple[str, str | None]:
    colon = remainder.rfind(":")
    if colon <= remainder.rfind("/"):
        return remainder, None
    tag = remainder[colon + 1 :]
    if not _TAG.match(tag):
        raise InvalidReferenceError(f"image reference {text!r}: invalid tag {tag!r}")
    return remainder[:colon], tag


def _split_registry(text: str, name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry = _normalise_registry(text, first)
        path = rest
    else:
        registry, path = DOCKER_HUB, name
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    _check_path(text, path)
    return registry, path


def _normalise_registry(text: str, host: str) -> str:
    match = _HOST.match(host)
    if match is None:
        raise InvalidReferenceError(f"image reference {text!r}: invalid registry host {host!r}")
    port = match.group("port")
    if port is not None and not 0 < int(port) < 65536:
        raise InvalidReferenceError(f"image reference {text!r}: invalid registry port {port}")
    lowered = host.lower()
    return DOCKER_HUB if lowered in _DOCKER_HUB_ALIASES else lowered


def _check_path(text: str, path: str) -> None:
    if not path:
        raise InvalidReferenceError(f"image reference {text!r} has no repository")
    if len(path) > _MAX_REPOSITORY:
        raise InvalidReferenceError(
            f"image reference {text!r}: repository longer than {_MAX_REPOSITORY} characters"
        )
    for component in path.split("/"):
        if not _COMPONENT.match(component):
            hint = " (repository names must be lowercase)" if component.lower() != component else ""
            raise InvalidReferenceError(
                f"image reference {text!r}: invalid repository component {component!r}{hint}"
            )
