import json

import pytest

from aimctrl.discovery.errors import LabelParseError, MissingLabelError, Reason
from aimctrl.discovery.labels import RecommendedDeployment, parse_deployments, parse_labels

S = "org.amd.silogen."
A = "com.amd.aim."
ONE = '{"gpuModel": "MI300X", "gpuCount": 1, "precision": "fp8", "metric": "latency"}'
MI300X_1 = RecommendedDeployment(gpu_model="MI300X", gpu_count=1, precision="fp8", metric="latency")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"[{ONE}]", [MI300X_1]),
        (ONE, [MI300X_1]),
        (f"{ONE}, {ONE}", [MI300X_1, MI300X_1]),
        (f"  [ {ONE} ]\n", [MI300X_1]),
        ("[]", []),
        (
            "{'gpuModel': 'MI300X', 'gpuCount': 1, 'precision': 'fp8', 'metric': 'latency'}",
            [MI300X_1],
        ),
        (
            "[{'gpuModel': 'MI300X', 'gpuCount': 8, 'description': \"Meta's best\", "
            "'profileId': None}]",
            [RecommendedDeployment(gpu_model="MI300X", gpu_count=8, description="Meta's best")],
        ),
        (
            "{'gpuModel': 'MI300X', 'description': 'It\\'s fast'}",
            [RecommendedDeployment(gpu_model="MI300X", description="It's fast")],
        ),
        (
            '[{"gpuModel": "MI300X", "description": "Llama\'s profile", "extra": 1}]',
            [RecommendedDeployment(gpu_model="MI300X", description="Llama's profile")],
        ),
        ('[{"gpuCount": "8"}]', [RecommendedDeployment(gpu_count=8)]),
        (
            "{'gpuModel': 'MI300X', 'gpuCount': 2,}",
            [RecommendedDeployment(gpu_model="MI300X", gpu_count=2)],
        ),
    ],
)
def test_deployments_parse_in_every_accepted_form(value, expected):
    assert parse_deployments("L", value) == expected


@pytest.mark.parametrize(
    ("value", "position", "detail"),
    [
        (
            '[{"gpuModel": "MI300X", "gpuCount": 1 "metric": "x"}]',
            "line 1, column 39 (char 38)",
            "delimiter",
        ),
        ('{"gpuModel": "MI300X"} {"gpuCount": 1}', "line 1, column 24 (char 23)", "delimiter"),
        ('[{"a":\n  "b" "c"}]', "line 2, column 7 (char 13)", "delimiter"),
        (
            "{'gpuModel': 'MI300X', 'description': 'it's'}",
            "line 1, column 44 (char 43)",
            "unterminated",
        ),
        ("{'gpuModel': MI300X}", "line 1, column 14 (char 13)", "only literals"),
        ("{'a': 'b' 'c'}", "line 1, column 11 (char 10)", "between strings"),
        ("{'a': 1} # note", "line 1, column 10 (char 9)", "comments"),
        ("{'a': __import__('os')}", "line 1, column 7 (char 6)", "only literals"),
        ("[1, 2]", "entry 0", "expected an object"),
        ('[{"gpuCount": "many"}]', "entry 0 field 'gpuCount'", "valid integer"),
        (
            '[{"gpuModel": "X"}, {"gpuCount": -1}]',
            "entry 1 field 'gpuCount'",
            "greater than or equal",
        ),
    ],
)
def test_unparseable_deployments_name_the_label_and_the_position(value, position, detail):
    with pytest.raises(LabelParseError) as info:
        parse_deployments(S + "model.deployments", value)
    error = info.value
    assert error.label == S + "model.deployments"
    assert error.position == position
    assert detail in error.detail
    assert S + "model.deployments" in error.message
    assert position in error.message
    assert error.reason is Reason.METADATA_EXTRACTION_FAILED


def test_full_label_set_maps_to_image_metadata():
    labels = {
        S + "model.canonicalName": "meta-llama/Llama-3.1-8B-Instruct",
        S + "model.deployments": f"[{ONE}]",
        S + "model.source": "hf://meta-llama/Llama-3.1-8B-Instruct",
        S + "model.tags": "text-generation, chat,, instruction ",
        S + "model.versions": '["0.8.4", "0.8.5"]',
        S + "model.variants": "8B",
        S + "hfToken.required": "TRUE",
        S + "title": "Llama",
        S + "description.full": "Long text",
        S + "release.notes": "Notes",
        "org.opencontainers.image.title": "aim-llama",
        "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.version": "0.8.4",
        "org.opencontainers.image.url": "ignored",
    }
    data = parse_labels(labels).model_dump(by_alias=True, exclude_none=True)
    assert data == {
        "model": {
            "canonicalName": "meta-llama/Llama-3.1-8B-Instruct",
            "source": "hf://meta-llama/Llama-3.1-8B-Instruct",
            "tags": ["text-generation", "chat", "instruction"],
            "versions": ["0.8.4", "0.8.5"],
            "variants": ["8B"],
            "hfTokenRequired": True,
            "title": "Llama",
            "descriptionFull": "Long text",
            "releaseNotes": "Notes",
            "recommendedDeployments": [
                {"gpuModel": "MI300X", "gpuCount": 1, "precision": "fp8", "metric": "latency"}
            ],
        },
        "oci": {"title": "aim-llama", "licenses": "Apache-2.0", "version": "0.8.4"},
    }


@pytest.mark.parametrize(
    ("labels", "canonical"),
    [
        ({A + "model.canonicalName": "aim/x", A + "model.recommendedDeployments": "[]"}, "aim/x"),
        (
            {
                S + "model.canonicalName": "s/x",
                A + "model.canonicalName": "a/x",
                S + "model.deployments": "[]",
            },
            "s/x",
        ),
        (
            {
                S + "model.canonicalName": "  ",
                A + "model.canonicalName": "a/x",
                A + "model.deployments": "[]",
            },
            "a/x",
        ),
    ],
)
def test_first_non_empty_prefix_wins(labels, canonical):
    assert parse_labels(labels).model.canonical_name == canonical


def test_seed_deployments_key_is_read_before_recommended_deployments():
    labels = {
        S + "model.canonicalName": "x",
        S + "model.deployments": f"[{ONE}]",
        S + "model.recommendedDeployments": "[]",
    }
    assert len(parse_labels(labels).model.recommended_deployments) == 1


@pytest.mark.parametrize(
    ("labels", "missing"),
    [
        ({S + "model.deployments": "[]"}, S + "model.canonicalName"),
        ({S + "model.canonicalName": "x"}, S + "model.deployments"),
        (
            {S + "model.canonicalName": "x", A + "model.recommendedDeployments": " "},
            S + "model.deployments",
        ),
        ({}, S + "model.canonicalName"),
    ],
)
def test_missing_required_labels_are_named(labels, missing):
    with pytest.raises(MissingLabelError) as info:
        parse_labels(labels)
    assert info.value.label == missing
    assert missing in info.value.message
    assert info.value.reason is Reason.METADATA_EXTRACTION_FAILED


@pytest.mark.parametrize(
    ("value", "expected"), [("False", False), ("yes", True), ("0", False), ("maybe", None)]
)
def test_hf_token_required_accepts_common_booleans(value, expected):
    labels = {
        S + "model.canonicalName": "x",
        S + "model.deployments": "[]",
        A + "hfToken.required": value,
    }
    assert parse_labels(labels).model.hf_token_required is expected


def test_list_label_that_is_not_a_list_of_strings_is_an_error():
    labels = {
        S + "model.canonicalName": "x",
        S + "model.deployments": "[]",
        S + "model.tags": '[{"a": 1}]',
    }
    with pytest.raises(LabelParseError, match=r"model\.tags"):
        parse_labels(labels)


def test_huge_label_is_refused_before_parsing():
    huge = json.dumps([{"description": "x" * 300_000}])
    with pytest.raises(LabelParseError, match="longer than"):
        parse_deployments("L", huge)
