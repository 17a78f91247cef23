"""10,000 generated label payloads through ``parse_labels``: a result or a typed error, no other.

Payloads: arbitrary unicode text, JSON documents (well-formed deployment lists and arbitrary
values), Python ``repr`` of dicts (single quotes, ``True``/``None``), JSON objects without the
surrounding brackets, deep nesting, huge and non-finite numbers, and single-character mutations of
valid payloads. Every outcome must be an :class:`ImageMetadata` or a :class:`DiscoveryError`
subclass with a reason and a message; anything else (``ValueError``, ``RecursionError``, …) fails.
Runs in about 20-40 s.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aimctrl.discovery.errors import DiscoveryError, LabelParseError, MissingLabelError, Reason
from aimctrl.discovery.labels import ImageMetadata, RecommendedDeployment, parse_labels

S = "org.amd.silogen."
A = "com.amd.aim."
OCI = "org.opencontainers.image."
DEPLOYMENT_KEYS = ("gpuModel", "gpuCount", "precision", "metric", "description", "profileId")

huge_ints = st.integers(min_value=-(10**40), max_value=10**40)
# Integers past Python's 4,300-digit str/int limit exist only as text.
huge_digits = st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n)
numbers = st.one_of(huge_ints, st.floats(allow_nan=True, allow_infinity=True))
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=40))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(DEPLOYMENT_KEYS), st.text()), inner, max_size=4),
    ),
    max_leaves=12,
)
field_values = st.one_of(
    st.none(), st.text(max_size=30), huge_ints, st.sampled_from(["MI300X", "fp8", "latency", "'"])
)
deployment = st.dictionaries(st.sampled_from(DEPLOYMENT_KEYS), field_values, max_size=6)
valid_deployment = st.fixed_dictionaries(
    {},
    optional={
        "gpuModel": st.text(max_size=20),
        "gpuCount": st.integers(min_value=0, max_value=10**12),
        "precision": st.text(max_size=8),
        "metric": st.text(max_size=12),
        "description": st.text(max_size=60),
        "profileId": st.text(max_size=20),
    },
)


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)


def _bracketless(items: list[Any]) -> str:
    return ", ".join(_json(i) for i in items)


def _nested(depth: int, opener: str) -> str:
    closer = {"[": "]", "{": "}", "{'a': ": "}", '{"a": ': "}"}[opener]
    return opener * depth + "1" + closer * depth


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    text = draw(base)
    if not text:
        return text
    at = draw(st.integers(min_value=0, max_value=len(text) - 1))
    op = draw(st.sampled_from(["delete", "insert", "replace", "cut"]))
    char = draw(st.sampled_from([*"[]{}'\",:\\\n #0e-.", "\x00", "\u2028", "é"]))
    if op == "delete":
        return text[:at] + text[at + 1 :]
    if op == "insert":
        return text[:at] + char + text[at:]
    if op == "replace":
        return text[:at] + char + text[at + 1 :]
    return text[:at]


well_formed = st.one_of(
    st.lists(deployment, max_size=5).map(_json),
    st.lists(deployment, min_size=1, max_size=5).map(_bracketless),
    st.lists(deployment, max_size=5).map(repr),
    st.lists(deployment, min_size=1, max_size=4).map(lambda ds: ", ".join(repr(d) for d in ds)),
)
payloads = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(list("[]{}'\",:0123456789.eE+-tfnNTF \n\\"))),
    values.map(_json),
    values.map(repr),
    well_formed,
    mutated(well_formed),
    st.builds(
        _nested, st.integers(min_value=1, max_value=5000), st.sampled_from(["[", "{", "{'a': "])
    ),
    huge_digits.map(lambda n: f'[{{"gpuCount": {n}}}]'),
    huge_digits.map(lambda n: f"{{'gpuCount': -{n}}}"),
    huge_digits,
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "[1e999]", '{"gpuCount": 1e999}']),
)
list_values = st.one_of(st.text(), payloads)
prefix = st.sampled_from([S, A])
labels = st.fixed_dictionaries(
    {},
    optional={
        S + "model.canonicalName": st.text(),
        A + "model.canonicalName": st.text(max_size=30),
        S + "model.deployments": payloads,
        A + "model.recommendedDeployments": payloads,
        S + "model.tags": list_values,
        A + "model.versions": list_values,
        S + "model.variants": list_values,
        S + "hfToken.required": st.text(max_size=8),
        S + "title": st.text(),
        OCI + "created": st.text(max_size=30),
        OCI + "licenses": st.text(max_size=30),
    },
)


@settings(
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(labels)
@example({S + "model.canonicalName": "x", S + "model.deployments": "[" * 100_000})
@example({S + "model.canonicalName": "x", S + "model.deployments": "9" * 5000})
@example({S + "model.canonicalName": "x", S + "model.deployments": "{'a': 1}\x00"})
@example({S + "model.canonicalName": "x", S + "model.deployments": "[]", S + "model.tags": "[["})
def test_any_label_payload_gives_metadata_or_a_typed_error(labels: dict[str, str]) -> None:
    error: DiscoveryError | None = None
    try:
        result = parse_labels(labels)
    except DiscoveryError as e:  # anything else escapes and fails the test
        error = e
    if error is not None:
        assert isinstance(error.reason, Reason)
        assert error.message
        if isinstance(error, LabelParseError):
            assert error.label in labels
            assert error.position
        if isinstance(error, MissingLabelError):
            assert error.label.endswith(("model.canonicalName", "model.deployments"))
        return
    assert isinstance(result, ImageMetadata)
    assert result.model.canonical_name.strip()
    assert all(isinstance(d, RecommendedDeployment) for d in result.model.recommended_deployments)


@settings(max_examples=500, deadline=None)
@given(st.lists(valid_deployment, max_size=6), st.sampled_from(["json", "bare", "python"]))
def test_well_formed_deployments_parse_to_the_same_entries(
    deployments: list[dict[str, Any]], form: str
) -> None:
    if form == "json":
        value = json.dumps(deployments)
    elif form == "bare":
        value = ", ".join(json.dumps(d) for d in deployments) or "[]"
    else:
        value = repr(deployments)
    result = parse_labels({A + "model.canonicalName": "m", S + "model.deployments": value})
    assert result.model.recommended_deployments == [
        RecommendedDeployment.model_validate(d) for d in deployments
    ]
