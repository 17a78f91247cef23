"""Image labels → :class:`ImageMetadata` (SPEC §4).

Guarantees:

* every AMD key is looked up as ``org.amd.silogen.<key>`` then ``com.amd.aim.<key>``; the first
  non-empty value wins; deployments are read from ``model.deployments`` (the seed's name) before
  ``model.recommendedDeployments`` (the name current images use), for each prefix in that order;
* deployments may be a JSON array, JSON objects without the surrounding brackets, or Python-style
  dicts (single quotes, ``True``/``False``/``None``) — the latter parsed by a literal-only AST walk,
  so an apostrophe inside a double-quoted or escaped description survives; nothing is executed;
* ``model.canonicalName`` and the deployments are required: a missing one raises
  :class:`MissingLabelError` naming the label; an unparseable value raises :class:`LabelParseError`
  naming the label and the position (line, column and character offset, or the list entry);
* an empty deployments list ``[]`` is valid (the image recommends nothing);
* ``model.tags``/``versions``/``variants`` are comma-separated (trimmed, empties dropped) or arrays;
* ``hfToken.required`` accepts true/false/yes/no/1/0 in any case; anything else reads as unset.
"""

from __future__ import annotations

import ast
import io
import json
import tokenize
import warnings
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from aimctrl.discovery.errors import LabelParseError, MissingLabelError

__all__ = [
    "AMD_PREFIXES",
    "OCI_PREFIX",
    "CamelModel",
    "ImageMetadata",
    "ModelMetadata",
    "OCIMetadata",
    "RecommendedDeployment",
    "parse_deployments",
    "parse_labels",
]

AMD_PREFIXES = ("org.amd.silogen.", "com.amd.aim.")
OCI_PREFIX = "org.opencontainers.image."
_DEPLOYMENT_KEYS = ("model.deployments", "model.recommendedDeployments")
_MAX_STRUCTURED = 256 * 1024
_JSON_NAMES = {"true": True, "false": False, "null": None}


class CamelModel(BaseModel):
    """Frozen, camelCase on the wire, snake_case in Python; unknown keys ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore"
    )


class RecommendedDeployment(CamelModel):
    """One deployment an image recommends (a future service template)."""

    gpu_model: str | None = None
    gpu_count: int | None = Field(default=None, ge=0)
    precision: str | None = None
    metric: str | None = None
    description: str | None = None
    profile_id: str | None = None


class ModelMetadata(CamelModel):
    canonical_name: str
    source: str | None = None
    tags: list[str] = Field(default_factory=list)
    versions: list[str] = Field(default_factory=list)
    variants: list[str] = Field(default_factory=list)
    hf_token_required: bool | None = None
    title: str | None = None
    description_full: str | None = None
    release_notes: str | None = None
    recommended_deployments: list[RecommendedDeployment] = Field(default_factory=list)


class OCIMetadata(CamelModel):
    title: str | None = None
    description: str | None = None
    licenses: str | None = None
    vendor: str | None = None
    authors: str | None = None
    source: str | None = None
    documentation: str | None = None
    created: str | None = None
    revision: str | None = None
    version: str | None = None


class ImageMetadata(CamelModel):
    """What an image declares; the shape of ``status.imageMetadata``."""

    model: ModelMetadata
    oci: OCIMetadata = Field(default_factory=OCIMetadata)


def parse_labels(labels: Mapping[str, str]) -> ImageMetadata:
    """Parse an image config's labels; raise on a missing or unparseable required label."""
    canonical = _lookup(labels, "model.canonicalName")
    if canonical is None:
        raise MissingLabelError(
            _names("model.canonicalName")[0], alternatives=_names("model.canonicalName")[1:]
        )
    deployments_label = _lookup(labels, *_DEPLOYMENT_KEYS)
    if deployments_label is None:
        names = _names(*_DEPLOYMENT_KEYS)
        raise MissingLabelError(names[0], alternatives=names[1:])
    deployments = parse_deployments(deployments_label[0], deployments_label[1])
    model = ModelMetadata(
        canonical_name=canonical[1].strip(),
        source=_text(labels, "model.source"),
        tags=_list(labels, "model.tags"),
        versions=_list(labels, "model.versions"),
        variants=_list(labels, "model.variants"),
        hf_token_required=_bool(_text(labels, "hfToken.required")),
        title=_text(labels, "title"),
        description_full=_text(labels, "description.full"),
        release_notes=_text(labels, "release.notes"),
        recommended_deployments=deployments,
    )
    oci = OCIMetadata.model_validate(
        {
            field: labels[OCI_PREFIX + field]
            for field in OCIMetadata.model_fields
            if labels.get(OCI_PREFIX + field, "").strip()
        }
    )
    return ImageMetadata(model=model, oci=oci)


def parse_deployments(label: str, value: str) -> list[RecommendedDeployment]:
    """Parse one deployments label value (any accepted form); ``label`` names it in errors."""
    data = _structured(label, value)
    if not isinstance(data, list):
        data = [data]
    out: list[RecommendedDeployment] = []
    for index, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise LabelParseError(
                label,
                position=f"entry {index}",
                detail=f"expected an object, got {type(entry).__name__}",
            )
        try:
            out.append(RecommendedDeployment.model_validate(entry))
        except ValidationError as e:
            first = e.errors()[0]
            field = ".".join(str(p) for p in first.get("loc", ()))
            raise LabelParseError(
                label,
                position=f"entry {index}" + (f" field {field!r}" if field else ""),
                detail=str(first.get("msg")),
            ) from None
    return out


# -- lookups -------------------------------------------------------------------------------------


def _names(*keys: str) -> tuple[str, ...]:
    return tuple(prefix + key for prefix in AMD_PREFIXES for key in keys)


def _lookup(labels: Mapping[str, str], *keys: str) -> tuple[str, str] | None:
    for name in _names(*keys):
        value = labels.get(name)
        if value is not None and value.strip():
            return name, value
    return None


def _text(labels: Mapping[str, str], key: str) -> str | None:
    found = _lookup(labels, key)
    return found[1].strip() if found else None


def _list(labels: Mapping[str, str], key: str) -> list[str]:
    found = _lookup(labels, key)
    if found is None:
        return []
    label, value = found
    if value.strip().startswith("["):
        data = _structured(label, value)
        if not isinstance(data, list) or not all(isinstance(v, str | int | float) for v in data):
            raise LabelParseError(label, position="top level", detail="expected a list of strings")
        return [str(v).strip() for v in data if str(v).strip()]
    return [part.strip() for part in value.split(",") if part.strip()]


def _bool(value: str | None) -> bool | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in {"true", "yes", "1"}:
        return True
    if lowered in {"false", "no", "0"}:
        return False
    return None


# -- structured values ---------------------------------------------------------------------------


class _LiteralError(Exception):
    def __init__(self, line: int, column: int, detail: str) -> None:
        super().__init__(detail)
        self.line, self.column, self.detail = line, column, detail


def _structured(label: str, value: str) -> object:
    """JSON, bracket-less JSON objects, or Python literals; errors carry the position."""
    text = value.strip()
    if len(text) > _MAX_STRUCTURED:
        raise LabelParseError(
            label, position="top level", detail=f"longer than {_MAX_STRUCTURED} characters"
        )
    shift = 0 if text.startswith("[") else 1
    source = text if shift == 0 else f"[{text}]"
    try:
        return json.loads(source)
    except json.JSONDecodeError as e:
        json_error = e
    except (RecursionError, ValueError) as e:
        # Nesting past the recursion limit, or an integer past Python's 4,300-digit limit:
        # not JSON this parser can take; the Python-literal parser below says where.
        json_error = json.JSONDecodeError(str(e).split(";", 1)[0], source, 0)
    try:
        return _python_literal(source)
    except _LiteralError as e:
        python_error = e
    if _python_style(text):
        line, column = python_error.line, python_error.column
        detail = python_error.detail
    else:
        line, column, detail = json_error.lineno, json_error.colno, json_error.msg
    if line == 1:
        column = max(1, column - shift)
    offset = _offset(text, line, column)
    raise LabelParseError(
        label, position=f"line {line}, column {column} (char {offset})", detail=detail
    )


def _python_style(text: str) -> bool:
    """The first quote character decides which parser's error a user should see."""
    for char in text:
        if char in "'\"":
            return char == "'"
    return False


def _offset(text: str, line: int, column: int) -> int:
    lines = text.split("\n")
    before = sum(len(x) + 1 for x in lines[: max(0, line - 1)])
    return max(0, min(len(text), before + column - 1))


def _python_literal(source: str) -> object:
    _check_tokens(source)
    try:
        with warnings.catch_warnings():
            # Label text is data: an odd escape like "\d" is not worth a warning on stderr.
            warnings.simplefilter("ignore", (DeprecationWarning, SyntaxWarning))
            tree = ast.parse(source, mode="eval")
    except SyntaxError as e:
        raise _LiteralError(e.lineno or 1, e.offset or 1, e.msg) from None
    except (RecursionError, MemoryError, ValueError):
        raise _LiteralError(1, 1, "nested too deeply or not text") from None
    lines = source.split("\n")
    return _literal(tree.body, lines)


def _check_tokens(source: str) -> None:
    """Reject what ``ast`` would silently accept: ``'a' 'b'`` concatenation and comments."""
    previous = tokenize.ENDMARKER
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                line, column = token.start
                raise _LiteralError(line, column + 1, "comments are not allowed")
            if token.type == tokenize.STRING and previous == tokenize.STRING:
                line, column = token.start
                raise _LiteralError(line, column + 1, "expected ',' or ':' between strings")
            if token.type not in (tokenize.NL, tokenize.NEWLINE):
                previous = token.type
    except (tokenize.TokenError, SyntaxError):
        return  # ast.parse reports these with a better position


def _literal(node: ast.expr, lines: list[str]) -> object:
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | bool):
        return node.value
    if isinstance(node, ast.Constant) and node.value is None:
        return None
    if isinstance(node, ast.Name) and node.id in _JSON_NAMES:
        return _JSON_NAMES[node.id]
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(e, lines) for e in node.elts]
    if isinstance(node, ast.Dict):
        out: dict[object, object] = {}
        for key, val in zip(node.keys, node.values, strict=True):
            if key is None:
                raise _node_error(val, lines, "'**' is not allowed")
            parsed_key = _literal(key, lines)
            if not isinstance(parsed_key, str):
                raise _node_error(key, lines, "object keys must be strings")
            out[parsed_key] = _literal(val, lines)
        return out
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub | ast.UAdd)
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, int | float)
        and not isinstance(node.operand.value, bool)
    ):
        number = node.operand.value
        return -number if isinstance(node.op, ast.USub) else number
    raise _node_error(node, lines, f"unexpected {type(node).__name__.lower()} (only literals)")


def _node_error(node: ast.expr, lines: list[str], detail: str) -> _LiteralError:
    line = node.lineno
    # ast columns count UTF-8 bytes; people count characters.
    raw = lines[line - 1].encode("utf-8")[: node.col_offset] if line - 1 < len(lines) else b""
    return _LiteralError(line, len(raw.decode("utf-8", "replace")) + 1, detail)
