"""The root of aimctrl's own error hierarchy and a helper for quoting API error bodies.

Every error aimctrl raises on purpose derives from :class:`AimctrlError`, so callers can tell
"aimctrl refused or failed" from a bug. Packages define their own subclasses next to the code that
raises them and chain the cause with ``raise ... from e``.

:func:`truncate` bounds the size of text that came from a server (error bodies, registry
responses) before it goes into an exception message, a log line or a condition message.
"""

from __future__ import annotations

__all__ = ["AimctrlError", "truncate"]


class AimctrlError(Exception):
    """Base class of every error aimctrl raises on purpose."""


def truncate(text: str | bytes | None, limit: int = 1024) -> str:
    """Return ``text`` cut to at most ``limit`` characters plus a marker saying how much was cut.

    Bytes are decoded as UTF-8 with replacement characters; ``None`` becomes ``""``.
    """
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters]"
