"""Fleet: the GPU inventory kept from Node events, and who is told when it changes."""

from __future__ import annotations

import copy
from typing import Any

from aimctrl.controllers.fleet import Fleet, FleetChange
from aimctrl.kube.resources import NODE
from aimctrl.machinery.store import DeletedFinalStateUnknown
from aimctrl.testing.fakeclient import fake_context
from aimctrl.testing.fleet import amd_node, cpu_node, fleet_nodes


def _fleet() -> tuple[Fleet, list[FleetChange], dict[str, int]]:
    ctx = fake_context()
    gauge: dict[str, int] = {}

    def set_gauge(totals: Any) -> None:
        gauge.clear()
        gauge.update(totals)

    fleet = Fleet(ctx.informers.informer(NODE), set_gauge=set_gauge)
    changes: list[FleetChange] = []
    fleet.subscribe(changes.append)
    return fleet, changes, gauge


def test_nodes_build_the_inventory_and_the_gauge() -> None:
    fleet, changes, gauge = _fleet()
    for node in fleet_nodes():
        fleet.on_add(node, True)
    inv = fleet.inventory()
    assert {k: m.total for k, m in inv.models.items()} == {"MI210": 4, "MI300X": 16, "MI325X": 8}
    assert gauge == {"MI210": 4, "MI300X": 16, "MI325X": 8}
    assert [sorted(c.models) for c in changes] == [["MI300X"], ["MI325X"], ["MI210"]]


def test_a_node_that_does_not_change_the_shape_notifies_nobody() -> None:
    fleet, changes, gauge = _fleet()
    fleet.on_add(amd_node("a", "MI300X"), False)
    changes.clear()
    fleet.on_add(amd_node("b", "MI300X"), False)  # same model, same GPUs per node
    assert changes == []
    assert gauge == {"MI300X": 16}
    assert fleet.inventory().models["MI300X"].nodes == 2


def test_a_heartbeat_changes_nothing() -> None:
    fleet, changes, _ = _fleet()
    node = amd_node("a", "MI300X")
    fleet.on_add(node, False)
    before = fleet.inventory()
    changes.clear()
    beat = copy.deepcopy(node)
    beat["status"]["conditions"][0]["lastHeartbeatTime"] = "2026-12-02T10:00:40Z"
    fleet.on_update(node, beat)
    assert changes == []
    assert fleet.inventory() is before  # the snapshot was not even rebuilt


def test_cordon_and_uncordon_flip_the_model_both_ways() -> None:
    fleet, changes, gauge = _fleet()
    node = amd_node("a", "MI355X")
    fleet.on_add(node, False)
    cordoned = copy.deepcopy(node)
    cordoned["spec"] = {"unschedulable": True}
    fleet.on_update(node, cordoned)
    assert fleet.inventory().models == {}
    assert gauge == {}
    fleet.on_update(cordoned, node)
    assert "MI355X" in fleet.inventory().models
    assert [c.models for c in changes] == [frozenset({"MI355X"})] * 3


def test_a_larger_node_changes_the_shape_and_its_removal_changes_it_back() -> None:
    fleet, changes, _ = _fleet()
    fleet.on_add(amd_node("small", "MI210", gpus=4), False)
    changes.clear()
    big = amd_node("big", "MI210", gpus=8)
    fleet.on_add(big, False)
    assert fleet.inventory().models["MI210"].max_per_node == 8
    fleet.on_delete(DeletedFinalStateUnknown("big", big))
    assert fleet.inventory().models["MI210"].max_per_node == 4
    assert [c.models for c in changes] == [frozenset({"MI210"})] * 2


def test_relabelling_a_node_touches_both_models() -> None:
    fleet, changes, _ = _fleet()
    fleet.on_add(amd_node("keep", "MI300X"), False)
    node = amd_node("moving", "MI300X")
    fleet.on_add(node, False)
    changes.clear()
    moved = amd_node("moving", "MI355X")
    fleet.on_update(node, moved)
    # MI300X keeps a node with 8 GPUs: its shape is unchanged; MI355X appears.
    assert [c.models for c in changes] == [frozenset({"MI355X"})]


def test_cpu_nodes_and_nodes_already_cached_are_handled() -> None:
    ctx = fake_context()
    informer = ctx.informers.informer(NODE)
    informer.indexer.add(amd_node("cached", "MI325X", form="beta"))
    fleet = Fleet(informer)
    assert set(fleet.inventory().models) == {"MI325X"}
    fleet.on_add(cpu_node("cpu"), False)
    assert set(fleet.inventory().models) == {"MI325X"}
