"""Logging: structlog for aimctrl, the same renderer for third-party stdlib loggers.

Guarantees after :func:`configure_logging`:

* ``format="json"``: one JSON object per line, with ``timestamp`` (ISO 8601, UTC), ``level`` and
  ``event`` (a constant message; data goes in other keys). Context bound with
  ``structlog.contextvars`` (``controller, kind, namespace, name, reconcile_id``) is merged into
  every line, including lines from stdlib loggers. ``format="console"`` renders the same data for
  people.
* Secrets never reach the output: values under secret-looking keys (password, token, secret,
  auth/authorization, credentials, api keys, ``.dockerconfigjson``) and the ``data`` of any dict
  that looks like a Kubernetes Secret are replaced by ``[REDACTED]``; bearer/basic credentials,
  JWTs, ``key=value`` secrets and URL passwords inside strings (messages and tracebacks too) are
  masked. Redaction copies containers; the caller's objects are never modified.
* stdlib loggers (the kubernetes client, urllib3) reach the same stream through the same
  processors at WARNING and above; each line is written whole under one lock.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Mapping
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["REDACTED", "configure_logging", "redact", "redact_secrets"]

REDACTED = "[REDACTED]"

# Keys whose (non-numeric) values are secrets; matched case-insensitively as substrings.
_SECRET_KEY_PARTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "credential",
    "dockerconfig",
    "apikey",
    "api_key",
    "api-key",
    "private_key",
    "privatekey",
)
# Keys that are secrets only as a whole word ("auth" but not "author").
_SECRET_KEY_WORDS = frozenset({"auth", "auths", "pwd", "cookie", "set-cookie"})
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")

_SECRET_IN_TEXT = (
    # Authorization header values: "Bearer abc", "Basic dXNlcjpw".
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    # JSON Web Tokens (service account tokens, OIDC tokens).
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
    # key=value or "key": "value" where the key looks secret.
    (
        re.compile(
            r"(?i)([\"']?\b(?:password|passwd|secret|token|api[_-]?key|authorization|auth)"
            r"[\"']?\s*[=:]\s*[\"']?)([^\s\"',&}]+)"
        ),
        r"\1" + REDACTED,
    ),
    # Passwords in URLs: scheme://user:password@host.
    (re.compile(r"([a-z][a-z0-9+.-]*://[^/\s:@]+:)[^/\s@]+@"), r"\1" + REDACTED + "@"),
)
_MAX_DEPTH = 8


def _is_secret_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    lowered = key.lower()
    if any(part in lowered for part in _SECRET_KEY_PARTS):
        return True
    return any(word in _SECRET_KEY_WORDS for word in _WORD_SPLIT.split(lowered))


def _redact_text(text: str) -> str:
    for pattern, replacement in _SECRET_IN_TEXT:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any, *, _depth: int = 0) -> Any:
    """Return ``value`` with secrets masked; containers are copied only where something changed."""
    if isinstance(value, str):
        return _redact_text(value)
    if _depth >= _MAX_DEPTH:
        return value
    if isinstance(value, Mapping):
        return _redact_mapping(value, _depth)
    if isinstance(value, list | tuple):
        items = [redact(v, _depth=_depth + 1) for v in value]
        changed = any(new is not old for new, old in zip(items, value, strict=True))
        if not changed:
            return value
        return items if isinstance(value, list) else tuple(items)
    return value


def _redact_mapping(value: Mapping[Any, Any], depth: int) -> Any:
    is_secret_object = value.get("kind") == "Secret"
    out: dict[Any, Any] = {}
    changed = False
    for key, item in value.items():
        if _masks(key, item) or (is_secret_object and key in ("data", "stringData")):
            new: Any = REDACTED
        else:
            new = redact(item, _depth=depth + 1)
        changed = changed or new is not item
        out[key] = new
    return out if changed else value


def _masks(key: object, item: Any) -> bool:
    # Numbers and booleans under "token" keys are counts and flags (max_tokens), not secrets.
    if item is None or isinstance(item, bool | int | float):
        return False
    return _is_secret_key(key)


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secrets in every key of the event (see :func:`redact`)."""
    for key, value in list(event_dict.items()):
        if key.startswith("_"):  # structlog/stdlib bookkeeping (_record, _from_structlog)
            continue
        event_dict[key] = REDACTED if _masks(key, value) else redact(value)
    return event_dict


_FIRST_KEYS = ("timestamp", "level", "logger", "event")


def _leading_keys_first(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Put timestamp, level, logger and event first so JSON lines scan well by eye."""
    first = {k: event_dict.pop(k) for k in _FIRST_KEYS if k in event_dict}
    return {**first, **event_dict}


class _LockedStream:
    """Serialises whole-line writes from structlog and stdlib handlers to one stream."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            n = self._stream.write(text)
            self._stream.flush()
            return n

    def flush(self) -> None:
        with self._lock:
            self._stream.flush()


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the root handler this module installs, so reconfiguring replaces it."""


def configure_logging(
    *,
    format: Literal["json", "console"] = "json",
    level: str | int = "info",
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and the stdlib root logger; safe to call again (tests, CLI)."""
    numeric = level if isinstance(level, int) else logging.getLevelNamesMapping()[level.upper()]
    out = _LockedStream(stream if stream is not None else sys.stderr)
    renderer: Processor = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    tail: list[Processor] = [
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redact_secrets,
        _leading_keys_first,
        renderer,
    ]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            timestamper,
            *tail,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # _LockedStream has the write/flush subset of TextIO that WriteLogger uses.
        logger_factory=structlog.WriteLoggerFactory(file=out),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )

    handler = _Handler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                timestamper,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(logging.WARNING, numeric))
