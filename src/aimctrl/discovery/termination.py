"""The discovery Job's container termination message: encode in the Job, decode in the controller.

The kubelet keeps at most 4096 bytes of ``/dev/termination-log``. Guarantees of
:func:`encode_termination_message`:

* the output is never longer than ``limit`` bytes (UTF-8) and never a truncated result;
* a result is compact JSON ``{"v":1,"result":{…}}`` when that fits; otherwise the same JSON
  zlib-compressed and base64-encoded behind the marker ``aimz1:``; if even that does not fit, the
  output is an explicit failure with reason ``MetadataTooLarge`` saying how large it was;
* a failure is ``{"v":1,"error":{"reason":…,"message":…}}`` with the message shortened (marked
  with ``…``) so that it always fits.

:func:`decode_termination_message` accepts exactly what the encoder produces and raises
:class:`TerminationMessageError` for anything else (e.g. a message written by a crashing runtime).
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib

from pydantic import ValidationError

from aimctrl.discovery.discover import DiscoveryResult
from aimctrl.discovery.errors import DiscoveryError, Reason
from aimctrl.discovery.labels import CamelModel

__all__ = [
    "COMPRESSED_MARKER",
    "TERMINATION_MESSAGE_LIMIT",
    "DiscoveryFailure",
    "TerminationMessageError",
    "decode_termination_message",
    "encode_termination_message",
]

TERMINATION_MESSAGE_LIMIT = 4096
COMPRESSED_MARKER = "aimz1:"
_VERSION = 1
_MAX_DECOMPRESSED = 1024 * 1024


class DiscoveryFailure(CamelModel):
    """A failed discovery as data: the reason and the message for people."""

    reason: Reason
    message: str

    @classmethod
    def from_error(cls, error: DiscoveryError) -> DiscoveryFailure:
        return cls(reason=error.reason, message=error.message)


class TerminationMessageError(ValueError):
    """The text is not a termination message written by :func:`encode_termination_message`."""


def encode_termination_message(
    outcome: DiscoveryResult | DiscoveryFailure | DiscoveryError,
    *,
    limit: int = TERMINATION_MESSAGE_LIMIT,
) -> str:
    """Encode ``outcome`` into at most ``limit`` bytes (see the module docstring)."""
    if isinstance(outcome, DiscoveryError):
        outcome = DiscoveryFailure.from_error(outcome)
    if isinstance(outcome, DiscoveryFailure):
        return _encode_failure(outcome, limit)
    plain = _json({"v": _VERSION, "result": outcome.model_dump(by_alias=True, exclude_none=True)})
    if len(plain.encode()) <= limit:
        return plain
    packed = COMPRESSED_MARKER + base64.b64encode(zlib.compress(plain.encode(), 9)).decode()
    if len(packed) <= limit:
        return packed
    too_large = DiscoveryFailure(
        reason=Reason.METADATA_TOO_LARGE,
        message=(
            f"the discovery result for {outcome.image} is {len(plain.encode())} bytes "
            f"({len(packed)} compressed), more than the {limit}-byte termination message "
            f"allows; the image declares "
            f"{len(outcome.image_metadata.model.recommended_deployments)} recommended "
            "deployments — shorten their descriptions or use --discovery-mode=inline"
        ),
    )
    return _encode_failure(too_large, limit)


def decode_termination_message(text: str) -> DiscoveryResult | DiscoveryFailure:
    """Decode what :func:`encode_termination_message` wrote."""
    text = text.strip()
    if text.startswith(COMPRESSED_MARKER):
        text = _inflate(text[len(COMPRESSED_MARKER) :])
    try:
        envelope = json.loads(text)
    except ValueError as e:
        raise TerminationMessageError(f"termination message is not JSON: {e}") from None
    if not isinstance(envelope, dict) or envelope.get("v") != _VERSION:
        raise TerminationMessageError("termination message has no supported version marker")
    try:
        if "result" in envelope:
            return DiscoveryResult.model_validate(envelope["result"])
        if "error" in envelope:
            return DiscoveryFailure.model_validate(envelope["error"])
    except ValidationError as e:
        raise TerminationMessageError(f"termination message is malformed: {e}") from None
    raise TerminationMessageError("termination message has neither 'result' nor 'error'")


def _encode_failure(failure: DiscoveryFailure, limit: int) -> str:
    message = failure.message
    while True:
        text = _json({"v": _VERSION, "error": {"reason": failure.reason.value, "message": message}})
        size = len(text.encode())
        if size <= limit or not message:
            return text
        raw = message.removesuffix("…").encode()
        keep = len(raw) - (size - limit) - len("…".encode())
        message = raw[:keep].decode("utf-8", "ignore") + "…" if keep > 0 else ""


def _inflate(data: str) -> str:
    try:
        raw = base64.b64decode(data, validate=True)
        inflater = zlib.decompressobj()
        out = inflater.decompress(raw, _MAX_DECOMPRESSED)
        if inflater.unconsumed_tail:
            raise TerminationMessageError("termination message inflates beyond 1 MiB")
        return out.decode("utf-8")
    except (binascii.Error, zlib.error, UnicodeDecodeError) as e:
        raise TerminationMessageError(f"compressed termination message is corrupt: {e}") from None


def _json(data: object) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, sort_keys=False)
