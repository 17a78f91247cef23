"""Registry credentials from ``kubernetes.io/dockerconfigjson`` payloads.

Guarantees:

* a payload may be bytes, str or an already decoded mapping; both ``{"auths": {...}}`` and the
  legacy ``.dockercfg`` shape (the host map itself) are accepted;
* an entry's secret comes from ``auth`` (base64 ``user:password``) or ``username``/``password``;
  ``registrytoken`` is kept as a ready bearer token;
* keys may be ``host``, ``host:port`` or a URL (``https://host/v1/``); they are normalised to
  ``host[:port]`` lower-cased, and the docker.io aliases all become ``docker.io``;
* when several payloads are merged, the first one that names a registry wins for it;
* :class:`Credentials` never shows its secret in ``repr``/``str``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from aimctrl.discovery.errors import PullSecretError
from aimctrl.discovery.reference import DOCKER_HUB

__all__ = [
    "DOCKERCONFIGJSON_KEY",
    "Credentials",
    "DockerConfig",
    "load_pull_secrets_dir",
    "normalise_registry_key",
    "parse_dockerconfigjson",
]

DOCKERCONFIGJSON_KEY = ".dockerconfigjson"
_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


@dataclass(frozen=True, repr=False)
class Credentials:
    """A username and password (or a registry token) for one registry."""

    username: str = ""
    password: str = field(default="", compare=True)
    registry_token: str = ""

    def __repr__(self) -> str:
        secret = "***" if (self.password or self.registry_token) else "''"
        return f"Credentials(username={self.username!r}, secret={secret})"

    __str__ = __repr__

    @property
    def has_basic(self) -> bool:
        return bool(self.username or self.password)


@dataclass(frozen=True)
class DockerConfig:
    """Credentials by normalised registry (``host[:port]``)."""

    auths: Mapping[str, Credentials] = field(default_factory=dict)

    def lookup(self, registry: str) -> Credentials | None:
        """The credentials for ``registry`` (as in :attr:`ImageReference.registry`), if any."""
        return self.auths.get(normalise_registry_key(registry))

    def merged(self, *others: DockerConfig) -> DockerConfig:
        """This config, then each of ``others`` for registries not named yet."""
        out = dict(self.auths)
        for other in others:
            for key, creds in other.auths.items():
                out.setdefault(key, creds)
        return DockerConfig(auths=out)

    @classmethod
    def merge(cls, configs: Iterable[DockerConfig]) -> DockerConfig:
        """Merge in order; the first config naming a registry wins."""
        return cls().merged(*configs)

    def __repr__(self) -> str:
        return f"DockerConfig(registries={sorted(self.auths)!r})"


def normalise_registry_key(key: str) -> str:
    """``https://Index.Docker.io/v1/`` → ``docker.io``; ``http://h:5000/x`` → ``h:5000``."""
    host = key.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0].lower()
    return DOCKER_HUB if host in _DOCKER_HUB_ALIASES else host


def parse_dockerconfigjson(
    payload: bytes | str | Mapping[str, object], *, source: str = "pull secret"
) -> DockerConfig:
    """Parse one ``.dockerconfigjson`` payload; raise :class:`PullSecretError` if it is invalid."""
    data = _decode(payload, source)
    auths = data.get("auths", data)
    if not isinstance(auths, Mapping):
        raise PullSecretError(f"{source}: 'auths' is not an object")
    out: dict[str, Credentials] = {}
    for key, entry in auths.items():
        if not isinstance(key, str) or not isinstance(entry, Mapping):
            raise PullSecretError(f"{source}: entry {key!r} is not an object")
        creds = _entry(cast("Mapping[str, object]", entry), source, key)
        if creds is not None:
            out.setdefault(normalise_registry_key(key), creds)
    return DockerConfig(auths=out)


def load_pull_secrets_dir(directory: str | Path) -> DockerConfig:
    """Merge every mounted secret under ``directory`` in name order.

    Each secret is a sub-directory holding ``.dockerconfigjson`` (how a Secret volume mounts); a
    ``.dockerconfigjson`` directly in ``directory`` counts too and comes first.
    """
    root = Path(directory)
    if not root.is_dir():
        raise PullSecretError(f"pull secrets directory {str(root)!r} does not exist")
    files = [root / DOCKERCONFIGJSON_KEY]
    files += [d / DOCKERCONFIGJSON_KEY for d in sorted(root.iterdir()) if d.is_dir()]
    configs = []
    for path in files:
        if not path.is_file():
            continue
        try:
            payload = path.read_bytes()
        except OSError as e:
            raise PullSecretError(f"pull secret {str(path)!r} cannot be read: {e}") from e
        configs.append(parse_dockerconfigjson(payload, source=f"pull secret {path.parent.name!r}"))
    return DockerConfig.merge(configs)


def _decode(payload: bytes | str | Mapping[str, object], source: str) -> Mapping[str, object]:
    if isinstance(payload, Mapping):
        return payload
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise PullSecretError(f"{source}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise PullSecretError(f"{source}: top level is not a JSON object")
    return cast("Mapping[str, object]", data)


def _entry(entry: Mapping[str, object], source: str, key: str) -> Credentials | None:
    username = _string(entry, "username", source, key)
    password = _string(entry, "password", source, key)
    token = _string(entry, "registrytoken", source, key)
    auth = _string(entry, "auth", source, key)
    if auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            # Never quote the value: it is the secret.
            raise PullSecretError(f"{source}: 'auth' of {key!r} is not base64") from None
        if ":" not in decoded:
            raise PullSecretError(f"{source}: 'auth' of {key!r} is not 'user:password'")
        username, password = decoded.split(":", 1)
    if not (username or password or token):
        return None
    return Credentials(username=username, password=password, registry_token=token)


def _string(entry: Mapping[str, object], name: str, source: str, key: str) -> str:
    value = entry.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PullSecretError(f"{source}: {name!r} of {key!r} is not a string")
    return value
