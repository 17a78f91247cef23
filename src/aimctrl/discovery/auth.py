"""Registry authentication: ``WWW-Authenticate`` challenges and a bearer-token cache.

Guarantees:

* :func:`parse_www_authenticate` reads every challenge of a header (RFC 7235 ``auth-param`` lists,
  quoted strings with commas and backslash escapes); scheme names are lower-cased;
* :class:`TokenCache` hands out a token for ``(registry, scope)`` only while it is valid by the
  injected clock, with a safety margin before ``expires_in`` runs out;
* tokens and passwords are never part of a ``repr`` or an error message.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from aimctrl.discovery.dockerconfig import Credentials
from aimctrl.machinery.clock import REAL_CLOCK, Clock

__all__ = [
    "Challenge",
    "TokenCache",
    "TokenResponse",
    "basic_header",
    "parse_www_authenticate",
    "pick_challenge",
]

_DEFAULT_TOKEN_LIFETIME = 60.0
_EXPIRY_MARGIN = 10.0


@dataclass(frozen=True)
class Challenge:
    """One challenge: ``scheme`` (lower case) and its parameters (keys lower case)."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)


class TokenResponse(BaseModel):
    """What a token service answers (Docker token auth; ``access_token`` is the OAuth2 spelling)."""

    model_config = ConfigDict(frozen=True)

    token: str = ""
    access_token: str = ""
    expires_in: int | None = Field(default=None, ge=0)

    @property
    def bearer(self) -> str:
        return self.token or self.access_token


def basic_header(creds: Credentials) -> str:
    raw = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def parse_www_authenticate(header: str) -> list[Challenge]:
    """All challenges in a ``WWW-Authenticate`` header, in order."""
    challenges: list[Challenge] = []
    pos, n = 0, len(header)
    while pos < n:
        pos = _skip(header, pos, " \t,")
        start = pos
        while pos < n and header[pos] not in " \t,=":
            pos += 1
        token = header[start:pos]
        if not token:
            break
        after = _skip(header, pos, " \t")
        if after < n and header[after] == "=":
            # A parameter without a scheme before it: malformed; attach to nothing.
            pos = _read_value(header, after + 1)[1]
            continue
        challenge = Challenge(scheme=token.lower())
        challenges.append(challenge)
        pos = _read_params(header, after, challenge.params)
    return challenges


def pick_challenge(challenges: Sequence[Challenge]) -> Challenge | None:
    """Bearer over Basic over anything else."""
    for scheme in ("bearer", "basic"):
        for c in challenges:
            if c.scheme == scheme:
                return c
    return challenges[0] if challenges else None


def _skip(text: str, pos: int, chars: str) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _read_params(header: str, pos: int, params: dict[str, str]) -> int:
    n = len(header)
    while pos < n:
        pos = _skip(header, pos, " \t,")
        start = pos
        while pos < n and header[pos] not in " \t,=":
            pos += 1
        name = header[start:pos]
        eq = _skip(header, pos, " \t")
        if not name or eq >= n or header[eq] != "=":
            return start  # the next challenge starts here
        value, pos = _read_value(header, eq + 1)
        params[name.lower()] = value
    return pos


def _read_value(header: str, pos: int) -> tuple[str, int]:
    n = len(header)
    pos = _skip(header, pos, " \t")
    if pos < n and header[pos] == '"':
        out: list[str] = []
        pos += 1
        while pos < n and header[pos] != '"':
            if header[pos] == "\\" and pos + 1 < n:
                pos += 1
            out.append(header[pos])
            pos += 1
        return "".join(out), pos + 1
    start = pos
    while pos < n and header[pos] not in " \t,":
        pos += 1
    return header[start:pos], pos


class TokenCache:
    """Bearer tokens by ``(registry, scope)``, valid until shortly before they expire."""

    def __init__(self, *, clock: Clock = REAL_CLOCK) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def get(self, registry: str, scope: str) -> str | None:
        with self._lock:
            entry = self._tokens.get((registry, scope))
            if entry is None:
                return None
            token, valid_until = entry
            if self._clock.now() >= valid_until:
                del self._tokens[(registry, scope)]
                return None
            return token

    def put(self, registry: str, scope: str, token: str, *, expires_in: float | None) -> None:
        lifetime = _DEFAULT_TOKEN_LIFETIME if not expires_in else float(expires_in)
        margin = _EXPIRY_MARGIN if lifetime > 2 * _EXPIRY_MARGIN else lifetime / 2
        with self._lock:
            self._tokens[(registry, scope)] = (token, self._clock.now() + lifetime - margin)

    def invalidate(self, registry: str, scope: str) -> None:
        with self._lock:
            self._tokens.pop((registry, scope), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._tokens)

    def __repr__(self) -> str:
        return f"TokenCache(entries={len(self)})"
