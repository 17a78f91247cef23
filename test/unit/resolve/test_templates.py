from __future__ import annotations

import re
from typing import Any

import pytest

from aimctrl.api.v1alpha1.enums import AIMStatus, ConditionStatus, Reason
from aimctrl.api.v1alpha1.model import AIMClusterModel, AIMModel, RecommendedDeployment
from aimctrl.api.v1alpha1.template import AIMClusterServiceTemplate, AIMServiceTemplate
from aimctrl.resolve.templates import (
    LABEL_AUTO_GENERATED,
    LABEL_MODEL,
    aggregate_model_status,
    desired_templates,
    is_auto_template_of,
    model_label_value,
    plan_templates,
    template_name,
    template_profile,
    templates_auto_generated_condition,
    templates_to_prune,
)

TRUE = ConditionStatus.TRUE
RFC1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MI300X_1_LAT_FP8 = {"gpuModel": "MI300X", "gpuCount": 1, "metric": "latency", "precision": "fp8"}


def _dep(**fields: Any) -> RecommendedDeployment:
    return RecommendedDeployment.model_validate(fields)


def _model_dict(
    name: str, deployments: list[dict[str, Any]] | None, *, spec: dict[str, Any] | None = None
) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if deployments is not None:
        status = {"imageMetadata": {"model": {"recommendedDeployments": deployments}}}
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "generation": 1},
        "spec": {"image": "ghcr.io/x/y:1", **(spec or {})},
        "status": status,
    }


def _ns_model(name: str, deployments: list[dict[str, Any]] | None, **kw: Any) -> AIMModel:
    d = _model_dict(name, deployments, **kw)
    d["metadata"]["namespace"] = "team"
    return AIMModel.model_validate(d)


def _cl_model(name: str, deployments: list[dict[str, Any]] | None, **kw: Any) -> AIMClusterModel:
    return AIMClusterModel.model_validate(_model_dict(name, deployments, **kw))


def _template(
    name: str,
    *,
    spec: dict[str, Any],
    status: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
) -> AIMServiceTemplate:
    return AIMServiceTemplate.model_validate(
        {
            "metadata": {"name": name, "namespace": "team", **(meta or {})},
            "spec": {"modelName": "m", **spec},
            "status": status or {},
        }
    )


# --- names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "deployment", "expected"),
    [
        ("llama-3-8b", MI300X_1_LAT_FP8, "llama-3-8b-1x-mi300x-lat-fp8-27c0"),
        ("simple-model", {"metric": "latency"}, "simple-model-lat-c9f9"),
        (
            "test-model",
            {"gpuModel": "MI300X", "metric": "latency", "precision": "fp8"},
            "test-model-mi300x-lat-fp8-465c",
        ),
    ],
)
def test_template_name_reproduces_the_spec_vectors(
    model: str, deployment: dict[str, Any], expected: str
) -> None:
    assert template_name(model, _dep(**deployment)) == expected


@pytest.mark.parametrize(
    ("deployment", "middle"),
    [
        ({"gpuCount": 4, "metric": "throughput"}, "-x4-thr-"),
        ({"gpuModel": "MI325X", "precision": "bf16"}, "-mi325x-bf16-"),
        ({"metric": "balanced"}, "-balanced-"),
        ({"gpuModel": "MI300X", "gpuCount": 0}, "-mi300x-"),
    ],
)
def test_template_name_leaves_out_unset_parts_and_keeps_other_metrics_verbatim(
    deployment: dict[str, Any], middle: str
) -> None:
    name = template_name("m", _dep(**deployment))
    assert name.startswith("m" + middle)
    assert re.fullmatch(r"[0-9a-f]{4}", name.rsplit("-", 1)[1])


def test_long_model_names_are_truncated_to_63_and_stay_unique_through_the_hash() -> None:
    dep = _dep(gpuModel="MI300X", gpuCount=8, metric="throughput", precision="fp16")
    a = template_name("very-long-model-name-that-exceeds-kubernetes-limits", dep)
    b = template_name("very-long-model-name-that-exceeds-kubernetes-limits-2", dep)
    assert a.startswith("very-long-model-name-that-exceeds-kuber-8x-mi300x-thr-fp16-")
    assert len(a) == 63
    assert len(b) == 63
    assert a != b
    assert RFC1123_LABEL.fullmatch(a)
    assert RFC1123_LABEL.fullmatch(b)


@pytest.mark.parametrize(
    ("model", "deployment"),
    [
        ("llama-3.1-8b", {"gpuModel": "MI300X/Instinct", "metric": "latency"}),
        ("m", {"gpuModel": "  AMD  Radeon!!", "gpuCount": 2}),
        ("m-", {"gpuModel": "-" * 80 + "x" * 80, "precision": "FP8"}),
        ("a" * 253, {"gpuModel": "G" * 100, "gpuCount": 9999, "metric": "t" * 50}),
        ("m", {}),
    ],
)
def test_template_name_is_an_rfc1123_label_for_odd_input(
    model: str, deployment: dict[str, Any]
) -> None:
    name = template_name(model, _dep(**deployment))
    assert len(name) <= 63
    assert RFC1123_LABEL.fullmatch(name), name


def test_dots_are_replaced_but_the_hash_keeps_dotted_and_dashed_names_apart() -> None:
    dep = _dep(metric="latency")
    dotted = template_name("llama-3.1", dep)
    dashed = template_name("llama-3-1", dep)
    assert dotted.startswith("llama-3-1-lat-")
    assert dotted != dashed


def test_model_label_value_keeps_short_names_and_hashes_long_ones() -> None:
    assert model_label_value("llama") == "llama"
    long_a, long_b = "a" * 70, "a" * 69 + "b"
    assert len(model_label_value(long_a)) == 63
    assert model_label_value(long_a) != model_label_value(long_b)


# --- desired templates ---------------------------------------------------------------------


def test_desired_templates_of_a_namespaced_model_are_owned_labelled_namespaced_objects() -> None:
    model = _ns_model(
        "llama-3-8b",
        [MI300X_1_LAT_FP8 | {"profileId": "vllm-fp8-tp1", "description": "fast"}],
        spec={"imagePullSecrets": [{"name": "pull"}], "serviceAccountName": "aim"},
    )
    [template] = desired_templates(model, cluster_scoped=False)
    assert template == {
        "apiVersion": "aim.silogen.ai/v1alpha1",
        "kind": "AIMServiceTemplate",
        "metadata": {
            "name": "llama-3-8b-1x-mi300x-lat-fp8-27c0",
            "namespace": "team",
            "labels": {LABEL_AUTO_GENERATED: "true", LABEL_MODEL: "llama-3-8b"},
            "ownerReferences": [
                {
                    "apiVersion": "aim.silogen.ai/v1alpha1",
                    "kind": "AIMModel",
                    "name": "llama-3-8b",
                    "uid": "uid-llama-3-8b",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "modelName": "llama-3-8b",
            "metric": "latency",
            "precision": "fp8",
            "gpuSelector": {"model": "MI300X", "count": 1, "resourceName": "amd.com/gpu"},
            "profileId": "vllm-fp8-tp1",
            "runtimeConfigName": "default",
            "imagePullSecrets": [{"name": "pull"}],
            "serviceAccountName": "aim",
        },
    }
    # What we apply must parse as the kind it claims to be.
    assert AIMServiceTemplate.model_validate(template).spec.gpu_selector is not None


def test_desired_templates_of_a_cluster_model_are_cluster_templates_without_namespace() -> None:
    model = _cl_model("m", [{"metric": "latency"}])
    [template] = desired_templates(model)
    assert template["kind"] == "AIMClusterServiceTemplate"
    assert "namespace" not in template["metadata"]
    assert template["metadata"]["ownerReferences"][0]["kind"] == "AIMClusterModel"
    assert "gpuSelector" not in template["spec"]
    AIMClusterServiceTemplate.model_validate(template)


def test_contradicting_cluster_scoped_flag_is_rejected() -> None:
    with pytest.raises(ValueError, match="cluster_scoped"):
        desired_templates(_ns_model("m", []), cluster_scoped=True)


def test_identical_deployments_produce_one_template_and_order_is_by_name() -> None:
    deployments = [
        {"gpuModel": "MI300X", "gpuCount": 8, "metric": "throughput", "precision": "fp16"},
        MI300X_1_LAT_FP8,
        MI300X_1_LAT_FP8 | {"description": "same again"},
    ]
    plan = plan_templates(_ns_model("m", deployments))
    assert list(plan.names) == sorted(plan.names)
    assert len(plan.names) == 2
    assert [s.index for s in plan.skipped] == [2]
    assert "same template" in plan.skipped[0].reason


@pytest.mark.parametrize(
    ("deployment", "expected_spec"),
    [
        ({"metric": "Latency", "precision": "FP8"}, {"metric": "latency", "precision": "fp8"}),
        ({"metric": "throughput", "precision": "int4"}, {"metric": "throughput"}),
    ],
)
def test_enum_values_are_matched_case_insensitively(
    deployment: dict[str, Any], expected_spec: dict[str, Any]
) -> None:
    [template] = desired_templates(_ns_model("m", [deployment]))
    assert expected_spec.items() <= template["spec"].items()


@pytest.mark.parametrize(
    ("deployment", "field"),
    [({"metric": "balanced"}, "metric"), ({"precision": "fp8-dynamic"}, "precision")],
)
def test_deployments_with_values_the_schema_rejects_are_skipped_with_a_reason(
    deployment: dict[str, Any], field: str
) -> None:
    plan = plan_templates(_ns_model("m", [deployment, {"metric": "latency"}]))
    assert len(plan.templates) == 1
    [skipped] = plan.skipped
    assert skipped.index == 0
    assert field in skipped.reason
    assert "is not one of" in skipped.reason


def test_model_without_uid_cannot_own_templates() -> None:
    model = _ns_model("m", [{"metric": "latency"}])
    model.metadata.uid = None
    with pytest.raises(ValueError, match="no uid"):
        plan_templates(model)


def test_templates_to_prune_are_the_existing_ones_no_longer_desired() -> None:
    assert templates_to_prune(["c", "a", "b"], ["b", "d"]) == ["a", "c"]
    assert templates_to_prune([], ["a"]) == []


def test_auto_template_ownership_needs_label_and_controller_uid() -> None:
    model = _ns_model("m", [])
    owner = {"apiVersion": "v", "kind": "AIMModel", "name": "m", "uid": "uid-m", "controller": True}
    labels = {LABEL_AUTO_GENERATED: "true"}
    owned = _template("t", spec={}, meta={"labels": labels, "ownerReferences": [owner]})
    hand = _template("t", spec={}, meta={"ownerReferences": [owner]})
    other = _template(
        "t", spec={}, meta={"labels": labels, "ownerReferences": [owner | {"uid": "old"}]}
    )
    assert is_auto_template_of(owned, model)
    assert not is_auto_template_of(hand, model)
    assert not is_auto_template_of(other, model)


# --- profile ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "deployments", "expected"),
    [
        (
            {"metric": "latency", "gpuSelector": {"model": "MI325X", "count": 2}},
            [],
            {"gpu": "MI325X", "gpu_count": 2, "metric": "latency"},
        ),
        (
            {"metric": "latency", "precision": "fp8"},
            [
                {"gpuModel": "MI300X", "gpuCount": 8, "metric": "throughput", "precision": "fp8"},
                MI300X_1_LAT_FP8,
            ],
            {"gpu": "MI300X", "gpu_count": 1, "metric": "latency", "precision": "fp8"},
        ),
        (
            {"metric": "latency", "gpuSelector": {"model": "mi300x"}},
            [MI300X_1_LAT_FP8],
            {"gpu": "mi300x", "gpu_count": 1, "metric": "latency", "precision": "fp8"},
        ),
        (
            {"metric": "latency"},
            [MI300X_1_LAT_FP8 | {"precision": "fp16", "gpuCount": 4}, {"metric": "latency"}],
            {"metric": "latency"},
        ),
        (
            {"precision": "fp16", "profileId": "p2"},
            [
                {"precision": "fp16", "gpuCount": 1, "profileId": "p1"},
                {"precision": "fp16", "gpuCount": 2, "profileId": "p2"},
            ],
            {"gpu_count": 2, "precision": "fp16"},
        ),
        ({"metric": "throughput"}, [MI300X_1_LAT_FP8], {"metric": "throughput"}),
    ],
    ids=[
        "selector-wins",
        "matching-deployment-fills-gpu",
        "gpu-model-case-insensitive",
        "exact-unset-match-preferred",
        "profile-id-wins",
        "no-match",
    ],
)
def test_template_profile(
    spec: dict[str, Any], deployments: list[dict[str, Any]], expected: dict[str, Any]
) -> None:
    template = _template("t", spec=spec)
    assert template_profile(template, _ns_model("m", deployments)) == expected


def test_template_profile_without_model_uses_the_spec_only() -> None:
    template = _template("t", spec={"precision": "bf16", "gpuSelector": {"count": 4}})
    assert template_profile(template, None) == {"gpu_count": 4, "precision": "bf16"}


# --- TemplatesAutoGenerated ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "deployments", "discovery", "ever", "expected"),
    [
        (
            {},
            [{"metric": "latency"}],
            True,
            False,
            (ConditionStatus.TRUE, "TemplatesAutoGenerated"),
        ),
        ({}, [], True, False, (ConditionStatus.FALSE, "NoRecommendedTemplates")),
        ({}, None, True, False, (ConditionStatus.FALSE, "AwaitingMetadata")),
        ({}, None, False, False, (ConditionStatus.FALSE, "DiscoveryDisabled")),
        (
            {},
            [{"metric": "latency"}],
            False,
            True,
            (ConditionStatus.TRUE, "TemplatesAutoGenerated"),
        ),
        (
            {"discovery": {"autoCreateTemplates": False}},
            [{"metric": "latency"}],
            True,
            False,
            (ConditionStatus.FALSE, "AutoCreationDisabled"),
        ),
        (
            {},
            [{"metric": "balanced"}],
            True,
            False,
            (ConditionStatus.FALSE, "NoRecommendedTemplates"),
        ),
    ],
    ids=[
        "generated",
        "empty-list",
        "no-metadata-yet",
        "disabled-never-generated",
        "disabled-after-generation-stays-true",
        "auto-creation-disabled",
        "nothing-usable",
    ],
)
def test_templates_auto_generated_condition(
    spec: dict[str, Any],
    deployments: list[dict[str, Any]] | None,
    discovery: bool,
    ever: bool,
    expected: tuple[ConditionStatus, str],
) -> None:
    model = _ns_model("m", deployments, spec=spec)
    plan = plan_templates(model)
    status, reason, message = templates_auto_generated_condition(
        model,
        plan.templates,
        discovery_enabled=discovery,
        ever_generated=ever,
        skipped=plan.skipped,
    )
    assert (status, reason) == expected
    assert message


def test_condition_message_names_the_templates_and_the_skipped_deployments() -> None:
    model = _ns_model("m", [{"metric": "latency"}, {"metric": "balanced"}])
    plan = plan_templates(model)
    _, _, message = templates_auto_generated_condition(
        model, plan.templates, discovery_enabled=True, ever_generated=False, skipped=plan.skipped
    )
    assert plan.names[0] in message
    assert "'balanced'" in message


# --- aggregation -----------------------------------------------------------------------------


def _st(name: str, status: str, *, reason: str | None = None, stale: bool = False) -> Any:
    conditions = []
    if reason:
        conditions = [{"type": "Ready", "status": "False", "reason": reason, "message": ""}]
    return _template(
        name,
        spec={},
        meta={"generation": 2},
        status={
            "status": status,
            "observedGeneration": 1 if stale else 2,
            "conditions": conditions,
        },
    )


@pytest.mark.parametrize(
    ("templates", "desired", "expected", "named"),
    [
        ([_st("a", "Ready"), _st("b", "Ready")], ["a", "b"], AIMStatus.READY, []),
        (
            [_st("a", "Ready"), _st("b", "Degraded", reason="ModelNotFound")],
            ["a", "b"],
            AIMStatus.DEGRADED,
            ["b: Degraded (ModelNotFound)"],
        ),
        (
            [_st("a", "Failed"), _st("b", "Pending")],
            ["a", "b"],
            AIMStatus.DEGRADED,
            ["a: Failed"],
        ),
        ([_st("a", "Ready")], ["a", "b"], AIMStatus.PROGRESSING, ["b (not created yet)"]),
        ([_st("a", "Progressing")], ["a"], AIMStatus.PROGRESSING, ["a: Progressing"]),
        ([_st("a", "Ready", stale=True)], ["a"], AIMStatus.PROGRESSING, ["a: Ready"]),
        ([_st("old", "Ready")], [], AIMStatus.READY, []),
        ([], [], AIMStatus.READY, []),
    ],
    ids=[
        "all-ready",
        "some-degraded",
        "failed-counts-as-issue",
        "missing-is-being-created",
        "progressing",
        "stale-status-is-progressing",
        "kept-after-discovery-disabled",
        "none",
    ],
)
def test_aggregate_model_status(
    templates: list[AIMServiceTemplate],
    desired: list[str],
    expected: AIMStatus,
    named: list[str],
) -> None:
    result = aggregate_model_status(templates, desired_names=desired)
    assert result.status == expected
    for fragment in named:
        assert fragment in result.message
    if expected == AIMStatus.DEGRADED:
        assert result.reason == Reason.TEMPLATES_DEGRADED
        assert "of 2 template(s) have issues" in result.message


def _na(name: str, needs: str) -> Any:
    message = f"needs {needs}; the cluster has MI300X (8 per node)"
    return _template(
        name,
        spec={},
        meta={"generation": 2},
        status={
            "status": "NotAvailable",
            "observedGeneration": 2,
            "conditions": [
                {
                    "type": "GPUAvailable",
                    "status": "False",
                    "reason": "GPUNotInCluster",
                    "message": message,
                },
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "GPUNotInCluster",
                    "message": message,
                },
            ],
        },
    )


def test_a_model_with_some_runnable_templates_is_ready_and_counts_them() -> None:
    templates = [_st("a", "Ready"), _st("b", "Ready"), _na("c", "8 x MI355X")]
    result = aggregate_model_status(templates, desired_names=["a", "b", "c"])
    assert (result.status, result.reason) == (AIMStatus.READY, Reason.ALL_TEMPLATES_READY)
    assert result.message == (
        "2 of 3 template(s) can run on this cluster; NotAvailable: c (needs 8 x MI355X); "
        "the cluster has MI300X (8 per node)"
    )


def test_a_model_none_of_whose_templates_can_run_is_not_available() -> None:
    templates = [_na("a", "8 x MI355X"), _na("b", "1 x MI355X")]
    result = aggregate_model_status(templates, desired_names=["a", "b"])
    assert (result.status, result.reason) == (
        AIMStatus.NOT_AVAILABLE,
        Reason.NO_RUNNABLE_TEMPLATE,
    )
    assert result.message == (
        "none of the 2 template(s) can run on this cluster: a (needs 8 x MI355X), "
        "b (needs 1 x MI355X); the cluster has MI300X (8 per node)"
    )


def test_all_ready_says_all_can_run_and_problems_still_win_over_not_available() -> None:
    ready = aggregate_model_status([_st("a", "Ready")], desired_names=["a"])
    assert ready.message == "all 1 template(s) are Ready and can run on this cluster"
    mixed = [_na("a", "8 x MI355X"), _st("b", "Degraded", reason="ModelFailed")]
    assert aggregate_model_status(mixed, desired_names=["a", "b"]).status == AIMStatus.DEGRADED
    waiting = [_na("a", "8 x MI355X"), _st("b", "Progressing")]
    assert aggregate_model_status(waiting, desired_names=["a", "b"]).status == (
        AIMStatus.PROGRESSING
    )
