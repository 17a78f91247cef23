"""The GPU fleet's pure functions: reading nodes in every label form, inventory, availability,
node affinity (SPEC §8)."""

from __future__ import annotations

from typing import Any

import pytest

from aimctrl.resolve.gpus import (
    DEVICE_MODELS,
    GPU_TIER,
    Inventory,
    availability,
    compact_node,
    device_ids_of,
    gpu_tier,
    inventory,
    model_from_product_name,
    node_affinity,
    node_gpus,
)
from aimctrl.testing.fleet import amd_node, cpu_node, fleet_nodes


def _node(labels: dict[str, str], *, gpus: str | None = "8", **status: Any) -> dict[str, Any]:
    allocatable = {"cpu": "64"} | ({"amd.com/gpu": gpus} if gpus is not None else {})
    body: dict[str, Any] = {
        "metadata": {"name": "n", "labels": labels},
        "status": {
            "allocatable": allocatable,
            "conditions": [{"type": "Ready", "status": "True"}],
            **status,
        },
    }
    return body


@pytest.mark.parametrize(
    ("labels", "model", "source"),
    [
        ({"amd.com/gpu.device-id": "74a1"}, "MI300X", "amd.com/gpu.device-id"),
        ({"beta.amd.com/gpu.device-id": "74a5"}, "MI325X", "beta.amd.com/gpu.device-id"),
        ({"amd.com/gpu.device-id.75a3": "8"}, "MI355X", "amd.com/gpu.device-id.<id>"),
        ({"beta.amd.com/gpu.device-id.740f": "4"}, "MI210", "beta.amd.com/gpu.device-id.<id>"),
        (
            {"amd.com/gpu.product-name": "AMD_Instinct_MI300X_OAM"},
            "MI300X",
            "amd.com/gpu.product-name",
        ),
        (
            {"beta.amd.com/gpu.product-name": "AMD_Instinct_MI325X_OAM"},
            "MI325X",
            "beta.amd.com/gpu.product-name",
        ),
        ({"amd.com/gpu.family": "AI"}, "AMD-AI", "amd.com/gpu.family"),
        ({"amd.com/gpu.device-id": "7fff"}, "AMD-7FFF", "amd.com/gpu.device-id"),
        ({"amd.com/gpu.device-id": "74A1"}, "MI300X", "amd.com/gpu.device-id"),
        ({"kubernetes.io/os": "linux"}, None, ""),
    ],
    ids=[
        "device-id",
        "beta-device-id",
        "count-encoded",
        "beta-count-encoded",
        "product-name",
        "beta-product-name",
        "family-hint",
        "unknown-id",
        "upper-case-id",
        "no-gpu-labels",
    ],
)
def test_each_label_form_gives_the_gpu_model(
    labels: dict[str, str], model: str | None, source: str
) -> None:
    parsed = node_gpus(_node(labels))
    assert (parsed.model, parsed.source) == (model, source)


def test_first_form_wins_device_id_over_product_name_and_beta() -> None:
    labels = {
        "amd.com/gpu.product-name": "AMD_Instinct_MI210",
        "beta.amd.com/gpu.device-id": "74a5",
        "amd.com/gpu.device-id": "74a1",
    }
    assert node_gpus(_node(labels)).model == "MI300X"
    del labels["amd.com/gpu.device-id"]
    assert node_gpus(_node(labels)).model == "MI325X"
    del labels["beta.amd.com/gpu.device-id"]
    assert node_gpus(_node(labels)).model == "MI210"


@pytest.mark.parametrize(
    ("device_id", "model"),
    [
        ("74a1", "MI300X"),
        ("74a9", "MI300X"),
        ("74b5", "MI300X"),
        ("74bd", "MI300X"),
        ("74a5", "MI325X"),
        ("74b9", "MI325X"),
        ("75a0", "MI350X"),
        ("75b0", "MI350X"),
        ("75a3", "MI355X"),
        ("75b3", "MI355X"),
        ("74a0", "MI300A"),
        ("74a2", "MI308X"),
        ("74a8", "MI308X"),
        ("74b6", "MI308X"),
        ("7408", "MI250X"),
        ("740c", "MI250X"),
        ("740f", "MI210"),
        ("7410", "MI210"),
    ],
)
def test_device_id_table(device_id: str, model: str) -> None:
    assert node_gpus(_node({"amd.com/gpu.device-id": device_id})).model == model
    assert device_id in device_ids_of(model)


def test_device_table_covers_every_tiered_gpu_and_nothing_else() -> None:
    assert set(DEVICE_MODELS.values()) == set(GPU_TIER)


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("AMD_Instinct_MI300X_OAM", "MI300X"),
        ("AMD Instinct MI210", "MI210"),
        ("Instinct-MI250X", "MI250X"),
        ("mi355x", "MI355X"),
        ("AMD_Radeon_PRO_W7900", None),
        ("", None),
    ],
)
def test_product_name_token(name: str, model: str | None) -> None:
    assert model_from_product_name(name) == model


def test_gpu_count_comes_from_allocatable_not_from_labels() -> None:
    node = _node({"amd.com/gpu.device-id.74a1": "8"}, gpus="6")
    assert node_gpus(node).count == 6
    assert node_gpus(_node({"amd.com/gpu.device-id": "74a1"}, gpus=None)).count == 0


@pytest.mark.parametrize(
    ("change", "counts"),
    [
        ({}, True),
        ({"conditions": [{"type": "Ready", "status": "False"}]}, False),
        ({"conditions": [{"type": "Ready", "status": "Unknown"}]}, False),
        ({"conditions": []}, False),
    ],
    ids=["ready", "not-ready", "unknown", "no-condition"],
)
def test_only_ready_nodes_count(change: dict[str, Any], counts: bool) -> None:
    node = _node({"amd.com/gpu.device-id": "74a1"})
    node["status"].update(change)
    assert node_gpus(node).counts is counts


def test_unschedulable_nodes_count_for_nothing() -> None:
    node = _node({"amd.com/gpu.device-id": "74a1"})
    node["spec"] = {"unschedulable": True}
    assert node_gpus(node).counts is False
    assert inventory([node_gpus(node)]).models == {}


def test_compact_node_keeps_what_the_parser_reads_and_drops_heartbeats() -> None:
    full = amd_node("big", "MI300X")
    full["metadata"]["managedFields"] = [{"manager": "kubelet"}]
    full["status"]["images"] = [{"names": ["x"] * 50, "sizeBytes": 1}]
    full["status"]["nodeInfo"] = {"kubeletVersion": "v1.35.0"}
    full["status"]["conditions"][0]["lastHeartbeatTime"] = "2026-12-02T10:00:00Z"
    compact = compact_node(full)
    assert set(compact) == {"metadata", "status"}
    assert set(compact["metadata"]) == {"name", "labels"}
    assert compact["status"]["conditions"] == [{"type": "Ready", "status": "True"}]
    assert node_gpus(compact) == node_gpus(full)
    full["status"]["conditions"][0]["lastHeartbeatTime"] = "2026-12-02T10:00:40Z"
    assert compact_node(full) == compact
    full["spec"] = {"unschedulable": True}
    assert compact_node(full)["spec"] == {"unschedulable": True}


def test_inventory_of_the_spec_test_fleet() -> None:
    inv = inventory(node_gpus(n) for n in fleet_nodes())
    assert {k: (m.nodes, m.max_per_node, m.total) for k, m in inv.models.items()} == {
        "MI210": (1, 4, 4),
        "MI300X": (2, 8, 16),
        "MI325X": (1, 8, 8),
    }
    assert inv.models["MI300X"].product_names == ("AMD_Instinct_MI300X_OAM",)
    assert inv.describe() == "MI210 (4 per node), MI300X (8 per node), MI325X (8 per node)"
    assert inv.max_per_node == 8


def _fleet() -> Inventory:
    return inventory(node_gpus(n) for n in fleet_nodes())


@pytest.mark.parametrize(
    ("model", "count", "available", "reason", "message"),
    [
        (
            "MI300X",
            8,
            True,
            "GPUAvailable",
            "needs 8 x MI300X; the cluster has MI210 (4 per node), MI300X (8 per node), "
            "MI325X (8 per node)",
        ),
        (
            "mi355x",
            8,
            False,
            "GPUNotInCluster",
            "needs 8 x MI355X; the cluster has MI210 (4 per node), MI300X (8 per node), "
            "MI325X (8 per node)",
        ),
        (
            "MI210",
            8,
            False,
            "NotEnoughGPUsPerNode",
            "needs 8 x MI210; the cluster has MI210 (4 per node), MI300X (8 per node), "
            "MI325X (8 per node)",
        ),
        ("MI210", None, True, "GPUAvailable", None),
        (None, 8, True, "GPUAvailable", None),
        (None, 16, False, "NotEnoughGPUsPerNode", None),
        (None, None, True, "GPUAvailable", "needs no GPU"),
    ],
    ids=[
        "fits",
        "model-absent",
        "too-few-per-node",
        "no-count-means-one",
        "no-model-any-gpu",
        "no-model-too-many",
        "no-gpu",
    ],
)
def test_availability(
    model: str | None, count: int | None, available: bool, reason: str, message: str | None
) -> None:
    result = availability(model, count, _fleet())
    assert (result.available, result.reason) == (available, reason)
    if message is not None:
        assert result.message == message


def test_availability_on_a_cluster_without_gpus() -> None:
    result = availability("MI300X", 1, inventory([node_gpus(cpu_node("c"))]))
    assert result == availability("MI300X", 1, Inventory())
    assert (result.available, result.reason) == (False, "GPUNotInCluster")
    assert result.message == "needs 1 x MI300X; the cluster has no schedulable AMD GPU nodes"


def _terms(affinity: dict[str, Any] | None) -> list[list[dict[str, Any]]]:
    assert affinity is not None
    required = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    return [t["matchExpressions"] for t in required["nodeSelectorTerms"]]


def test_affinity_has_one_term_per_label_form() -> None:
    terms = _terms(node_affinity("MI300X", _fleet()))
    ids = ["74a1", "74a9", "74b5", "74bd"]
    assert terms == [
        [{"key": "amd.com/gpu.device-id", "operator": "In", "values": ids}],
        [{"key": "beta.amd.com/gpu.device-id", "operator": "In", "values": ids}],
        *[[{"key": f"amd.com/gpu.device-id.{i}", "operator": "Exists"}] for i in ids],
        *[[{"key": f"beta.amd.com/gpu.device-id.{i}", "operator": "Exists"}] for i in ids],
        [
            {
                "key": "amd.com/gpu.product-name",
                "operator": "In",
                "values": ["AMD_Instinct_MI300X_OAM"],
            }
        ],
    ]


def _matches(node: dict[str, Any], terms: list[list[dict[str, Any]]]) -> bool:
    """The scheduler's rule for required node affinity: any term whose expressions all hold."""
    labels = node["metadata"]["labels"]

    def holds(expr: dict[str, Any]) -> bool:
        if expr["operator"] == "Exists":
            return bool(expr["key"] in labels)
        return bool(labels.get(expr["key"]) in expr["values"])

    return any(all(holds(e) for e in term) for term in terms)


@pytest.mark.parametrize("form", ["standard", "beta", "count"])
def test_affinity_matches_a_node_in_every_form_and_no_other_gpu(form: Any) -> None:
    terms = _terms(node_affinity("MI300X", _fleet()))
    assert _matches(amd_node("x", "MI300X", form=form), terms)
    for other in ("MI325X", "MI355X", "MI210"):
        assert not _matches(amd_node("y", other, form=form), terms)
    assert not _matches(cpu_node("c"), terms)


def test_affinity_for_no_model_is_none_and_for_an_unknown_one_names_it() -> None:
    assert node_affinity(None, _fleet()) is None
    assert _terms(node_affinity("AMD-7FFF", Inventory()))[0] == [
        {"key": "amd.com/gpu.device-id", "operator": "In", "values": ["7fff"]}
    ]


def test_gpu_tier_order() -> None:
    assert [gpu_tier(g) for g in GPU_TIER] == list(range(len(GPU_TIER)))
    assert gpu_tier("mi355x") == 0
    assert gpu_tier("AMD-7FFF") == gpu_tier(None) == len(GPU_TIER)
