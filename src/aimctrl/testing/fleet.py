"""Node objects as a real AMD GPU cluster has them, for the dev cluster, tests and benchmarks.

Sources (public): ROCm/k8s-device-plugin ``cmd/k8s-node-labeller`` (``main.go``: label keys are
``[beta.]amd.com/gpu.<kind>`` for the kinds device-id, product-name, family, vram, cu-count,
simd-count, driver-version, …; ``amdgpu.ids``: 74A1 MI300X, 74A5 MI325X, 75A3 MI355X, 740F
MI210), and ROCm's installation guide, whose example labels for an MI300X node are
``amd.com/gpu.device-id=74a1``, ``amd.com/gpu.product-name=AMD_Instinct_MI300X_OAM``,
``amd.com/gpu.family=AI``, ``amd.com/gpu.vram=192G``, ``amd.com/gpu.cu-count=304``,
``amd.com/gpu.simd-count=1216``. The three forms aimctrl reads (SPEC §8):

* ``standard``: ``amd.com/gpu.<kind>=<value>`` (the current prefix, for a node whose GPUs agree);
* ``beta``: ``beta.amd.com/gpu.<kind>=<value>`` only (the legacy prefix, "maintained for
  backwards compatibility"; clusters on an old labeller carry only these);
* ``count``: ``amd.com/gpu.<kind>.<value>=<count>``: the labeller's form when a node's GPUs
  differ (and always for the ``beta.`` form), the value in the key and the number of GPUs as
  the label value.

The labeller makes product names from sysfs with spaces turned into underscores and parentheses
dropped; VRAM is whole GiB with a ``G``. The GPUs are the device plugin's extended resource
``amd.com/gpu`` in ``status.capacity`` and ``status.allocatable``. Nothing here is read by
aimctrl itself; these objects stand in for what a cluster shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["GPUS", "TEST_FLEET", "GPUSpec", "LabelForm", "amd_node", "cpu_node", "fleet_nodes"]

LabelForm = Literal["standard", "beta", "count"]


@dataclass(frozen=True)
class GPUSpec:
    """One Instinct GPU as the labeller describes it."""

    device_id: str
    product_name: str
    family: str
    vram: str
    cu_count: int
    simd_count: int


GPUS: Mapping[str, GPUSpec] = {
    # MI300X: 192 GB HBM3, 304 CUs (1216 SIMDs); gfx942, family "AI" in the labeller's table.
    "MI300X": GPUSpec("74a1", "AMD_Instinct_MI300X_OAM", "AI", "192G", 304, 1216),
    # MI325X: 256 GB HBM3E, 304 CUs.
    "MI325X": GPUSpec("74a5", "AMD_Instinct_MI325X_OAM", "AI", "256G", 304, 1216),
    # MI355X: 288 GB HBM3E, 256 CUs.
    "MI355X": GPUSpec("75a3", "AMD_Instinct_MI355X_OAM", "AI", "288G", 256, 1024),
    # MI210: 64 GB HBM2e PCIe card, 104 CUs; gfx90a, family "AI".
    "MI210": GPUSpec("740f", "AMD_Instinct_MI210", "AI", "64G", 104, 416),
}


def _base(name: str, labels: Mapping[str, str], capacity: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                **labels,
            },
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {},
        "status": {
            "capacity": dict(capacity),
            "allocatable": dict(capacity),
            # What a kubelet reports once up (KWOK writes the same on the dev cluster); a
            # benchmark plane without KWOK keeps it as created.
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                }
            ],
        },
    }


def gpu_labels(model: str, *, form: LabelForm = "standard", gpus: int = 8) -> dict[str, str]:
    """The labeller's labels for a node with ``gpus`` GPUs of ``model`` in one label form."""
    spec = GPUS[model]
    fields = {
        "device-id": spec.device_id,
        "product-name": spec.product_name,
        "family": spec.family,
        "vram": spec.vram,
        "cu-count": str(spec.cu_count),
        "simd-count": str(spec.simd_count),
    }
    if form == "standard":
        return {f"amd.com/gpu.{k}": v for k, v in fields.items()}
    if form == "beta":
        return {f"beta.amd.com/gpu.{k}": v for k, v in fields.items()}
    return {
        f"amd.com/gpu.device-id.{spec.device_id}": str(gpus),
        f"amd.com/gpu.family.{spec.family}": str(gpus),
        f"amd.com/gpu.vram.{spec.vram}": str(gpus),
    }


def amd_node(
    name: str,
    model: str,
    *,
    form: LabelForm = "standard",
    gpus: int = 8,
    cpu: str = "192",
    memory: str = "2Ti",
) -> dict[str, Any]:
    """A GPU node: labelled as the labeller labels it, ``amd.com/gpu`` allocatable."""
    capacity = {"cpu": cpu, "memory": memory, "pods": "110", "amd.com/gpu": str(gpus)}
    return _base(name, gpu_labels(model, form=form, gpus=gpus), capacity)


def cpu_node(name: str) -> dict[str, Any]:
    """A node without GPUs."""
    return _base(name, {}, {"cpu": "32", "memory": "256Gi", "pods": "110"})


TEST_FLEET: tuple[tuple[str, str | None, LabelForm, int], ...] = (
    ("kwok-mi300x-0", "MI300X", "standard", 8),
    ("kwok-mi300x-1", "MI300X", "standard", 8),
    ("kwok-mi325x-beta-0", "MI325X", "beta", 8),
    ("kwok-mi210-count-0", "MI210", "count", 4),
    ("kwok-cpu-0", None, "standard", 0),
)
"""SPEC §8's mixed fleet: (name, GPU model or None, label form, GPUs)."""


def fleet_nodes() -> list[dict[str, Any]]:
    """The Node objects of :data:`TEST_FLEET`."""
    return [
        cpu_node(name) if model is None else amd_node(name, model, form=form, gpus=gpus)
        for name, model, form, gpus in TEST_FLEET
    ]
