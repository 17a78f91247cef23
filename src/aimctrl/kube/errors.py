# ruff: noqa: N818 - the classes are named after apimachinery's Status reasons (NotFound, ...)
"""aimctrl's own API error hierarchy, so nothing above :mod:`aimctrl.kube` sees ``kubernetes``.

Guarantees: every failed API call raises a :class:`KubeError` subclass chosen from the Status
``reason`` when the server sent one, else from the HTTP status; ``str(error)`` and ``error.body``
are bounded (the body is cut to :data:`MAX_BODY` characters) so they are safe to log; a transport
failure (no HTTP answer) is a :class:`TransportError` with status 0. ``AlreadyExists`` and
``Conflict`` are both HTTP 409 but distinct, as in apimachinery (``IsConflict`` is false for an
existing name).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_BODY",
    "AlreadyExists",
    "BadRequest",
    "Cause",
    "Conflict",
    "Forbidden",
    "Gone",
    "Invalid",
    "KubeError",
    "NotFound",
    "ServerError",
    "TooManyRequests",
    "TransportError",
    "Unauthorized",
    "from_api_exception",
    "from_response",
    "truncate",
]

MAX_BODY = 1024


def truncate(text: str, limit: int = MAX_BODY) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


@dataclass(frozen=True, slots=True)
class Cause:
    """One entry of ``Status.details.causes`` (which field was invalid and why)."""

    field: str
    reason: str
    message: str


class KubeError(Exception):
    """An API call failed. ``status`` is the HTTP status (0 when no answer came back)."""

    status: int = 0

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str = "",
        body: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(truncate(message))
        if status is not None:
            self.status = status
        self.reason = reason
        self.body = truncate(body)
        self.retry_after = retry_after


class BadRequest(KubeError):
    status = 400


class Unauthorized(KubeError):
    status = 401


class Forbidden(KubeError):
    status = 403


class NotFound(KubeError):
    status = 404


class Conflict(KubeError):
    """409 ``Conflict``: a stale ``resourceVersion`` or an apply conflict with another manager."""

    status = 409


class AlreadyExists(KubeError):
    """409 ``AlreadyExists``: create of a name that is taken."""

    status = 409


class Gone(KubeError):
    """410: the resource version asked for is too old (``Expired``/``Gone``)."""

    status = 410


class Invalid(KubeError):
    """422: the object failed validation; ``causes`` names the fields."""

    status = 422

    def __init__(self, message: str, *, causes: tuple[Cause, ...] = (), **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.causes = causes


class TooManyRequests(KubeError):
    """429: API Priority and Fairness (or a webhook) asked us to slow down."""

    status = 429


class ServerError(KubeError):
    """5xx, or any status this hierarchy has no better class for."""

    status = 500


class TransportError(KubeError):
    """No HTTP answer: connection refused, TLS failure, timeout, dropped stream."""

    status = 0


_BY_REASON: dict[str, type[KubeError]] = {
    "BadRequest": BadRequest,
    "Unauthorized": Unauthorized,
    "Forbidden": Forbidden,
    "NotFound": NotFound,
    "AlreadyExists": AlreadyExists,
    "Conflict": Conflict,
    "Gone": Gone,
    "Expired": Gone,
    "Invalid": Invalid,
    "TooManyRequests": TooManyRequests,
}

_BY_STATUS: dict[int, type[KubeError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
}


def _decode(body: bytes | str | None) -> tuple[str, Mapping[str, Any]]:
    if body is None:
        return "", {}
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    try:
        parsed = json.loads(text)
    except ValueError:
        return text, {}
    return text, parsed if isinstance(parsed, dict) else {}


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    if not headers:
        return None
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def from_response(
    status: int,
    body: bytes | str | None,
    *,
    http_reason: str = "",
    headers: Mapping[str, str] | None = None,
) -> KubeError:
    """The error for an HTTP answer ``status`` with a (possibly Status-shaped JSON) ``body``."""
    text, doc = _decode(body)
    reason = str(doc.get("reason") or "") if doc.get("kind") == "Status" else ""
    cls = _BY_REASON.get(reason) or _BY_STATUS.get(status) or ServerError
    message = str(doc.get("message") or http_reason or text or f"HTTP {status}")
    kwargs: dict[str, Any] = {
        "status": status,
        "reason": reason or http_reason,
        "body": text,
        "retry_after": _retry_after(headers),
    }
    if cls is Invalid:
        details = doc.get("details") or {}
        causes = tuple(
            Cause(
                field=str(c.get("field", "")),
                reason=str(c.get("reason", "")),
                message=str(c.get("message", "")),
            )
            for c in details.get("causes") or ()
            if isinstance(c, dict)
        )
        return Invalid(message, causes=causes, **kwargs)
    return cls(message, **kwargs)


def from_api_exception(e: Any) -> KubeError:
    """Map a ``kubernetes.client.ApiException`` (duck-typed: status, reason, body, headers)."""
    status = int(getattr(e, "status", 0) or 0)
    if status == 0:
        return TransportError(str(getattr(e, "reason", "") or e), status=0)
    headers = getattr(e, "headers", None)
    return from_response(
        status,
        getattr(e, "body", None),
        http_reason=str(getattr(e, "reason", "") or ""),
        headers=dict(headers) if headers else None,
    )
