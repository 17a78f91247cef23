"""The cluster's AMD GPUs (SPEC §8): pure functions from Node objects to an inventory, template
availability and node affinity. No I/O.

Reading a node (first match wins): ``amd.com/gpu.device-id`` (a PCI device id such as ``74a1``),
``beta.amd.com/gpu.device-id``, the count-encoded keys ``amd.com/gpu.device-id.<id>`` and
``beta.amd.com/gpu.device-id.<id>`` (the id is in the key, the value is a count), then
``amd.com/gpu.product-name`` (the ``MI…`` token of e.g. ``AMD_Instinct_MI300X_OAM``; the
``beta.`` key too), then ``amd.com/gpu.family`` as a last hint. These are the forms AMD's node
labeller writes (ROCm/k8s-device-plugin, ``cmd/k8s-node-labeller``). Device ids map to models
through :data:`DEVICE_MODELS` (public PCI ids); an unknown id becomes ``AMD-<ID>``.

Guarantees:

* a node counts only when it is Ready, not ``spec.unschedulable``, has a GPU model and at least
  one allocatable ``amd.com/gpu``; every other node contributes nothing;
* GPU model names are compared upper-cased (``mi300x`` == ``MI300X``);
* :class:`Inventory` is immutable; its :meth:`~Inventory.describe` text names each model with its
  GPUs per node (the largest node) and never node counts, so a node joining or leaving changes
  the messages of no template whose model's largest node it does not change;
* :func:`node_affinity` gives one node selector term per label form, so a pod schedules on a
  node labelled in any of them, and nowhere else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BETA_DEVICE_ID_LABEL",
    "BETA_PRODUCT_NAME_LABEL",
    "DEVICE_ID_LABEL",
    "DEVICE_MODELS",
    "FAMILY_LABEL",
    "GPU_RESOURCE",
    "GPU_TIER",
    "PRODUCT_NAME_LABEL",
    "Availability",
    "Inventory",
    "ModelInventory",
    "NodeGPUs",
    "availability",
    "compact_node",
    "device_ids_of",
    "gpu_tier",
    "inventory",
    "model_from_product_name",
    "node_affinity",
    "node_gpus",
    "normalise_model",
]

GPU_RESOURCE = "amd.com/gpu"
DEVICE_ID_LABEL = "amd.com/gpu.device-id"
BETA_DEVICE_ID_LABEL = "beta.amd.com/gpu.device-id"
PRODUCT_NAME_LABEL = "amd.com/gpu.product-name"
BETA_PRODUCT_NAME_LABEL = "beta.amd.com/gpu.product-name"
FAMILY_LABEL = "amd.com/gpu.family"
_COUNT_PREFIXES = (DEVICE_ID_LABEL + ".", BETA_DEVICE_ID_LABEL + ".")

DEVICE_MODELS: Mapping[str, str] = {
    # Instinct MI300X (OAM, and its virtual function / variants)
    "74a1": "MI300X",
    "74a9": "MI300X",
    "74b5": "MI300X",
    "74bd": "MI300X",
    "74a5": "MI325X",
    "74b9": "MI325X",
    "75a0": "MI350X",
    "75b0": "MI350X",
    "75a3": "MI355X",
    "75b3": "MI355X",
    "74a0": "MI300A",
    "74a2": "MI308X",
    "74a8": "MI308X",
    "74b6": "MI308X",
    "7408": "MI250X",
    "740c": "MI250X",
    "740f": "MI210",
    "7410": "MI210",
}
"""PCI device id (lower-case hex) → GPU model, from the public PCI id lists."""

GPU_TIER: tuple[str, ...] = (
    "MI355X",
    "MI350X",
    "MI325X",
    "MI300X",
    "MI308X",
    "MI300A",
    "MI250X",
    "MI210",
)
"""Automatic template selection prefers the earlier GPU; any other model ranks after these."""

_UNKNOWN_PREFIX = "AMD-"
_PRODUCT_TOKEN = re.compile(r"^MI\d{3}[A-Z]?$")
_TOKEN_SPLIT = re.compile(r"[\s_\-/.]+")


def normalise_model(model: str | None) -> str:
    """The comparable form of a GPU model name: stripped and upper-cased (``""`` for none)."""
    return (model or "").strip().upper()


def gpu_tier(model: str | None) -> int:
    """The rank of a GPU model in :data:`GPU_TIER` (lower is preferred; others rank last)."""
    name = normalise_model(model)
    return GPU_TIER.index(name) if name in GPU_TIER else len(GPU_TIER)


def _device_model(device_id: str) -> str:
    key = device_id.strip().lower()
    return DEVICE_MODELS.get(key) or f"{_UNKNOWN_PREFIX}{key.upper()}"


def device_ids_of(model: str) -> tuple[str, ...]:
    """The device ids of a GPU model, sorted (``AMD-<ID>`` gives its own id)."""
    name = normalise_model(model)
    ids = sorted(i for i, m in DEVICE_MODELS.items() if m == name)
    if not ids and name.startswith(_UNKNOWN_PREFIX):
        ids = [name[len(_UNKNOWN_PREFIX) :].lower()]
    return tuple(ids)


def model_from_product_name(product_name: str) -> str | None:
    """The ``MI…`` token of a product name (``AMD_Instinct_MI300X_OAM`` → ``MI300X``)."""
    for token in _TOKEN_SPLIT.split(product_name.strip().upper()):
        if _PRODUCT_TOKEN.match(token):
            return token
    return None


@dataclass(frozen=True)
class NodeGPUs:
    """What one node offers: its GPU model (None: no AMD GPU label), which label form said so,
    its allocatable GPUs, and whether it counts at all (Ready and schedulable)."""

    name: str
    model: str | None
    count: int
    schedulable: bool
    source: str = ""
    product_name: str | None = None

    @property
    def counts(self) -> bool:
        """Whether this node adds to the inventory."""
        return self.schedulable and self.model is not None and self.count > 0


def _labels_model(labels: Mapping[str, str]) -> tuple[str | None, str]:
    for key in (DEVICE_ID_LABEL, BETA_DEVICE_ID_LABEL):
        value = (labels.get(key) or "").strip()
        if value:
            return _device_model(value), key
    for prefix in _COUNT_PREFIXES:
        ids = sorted(k[len(prefix) :] for k in labels if k.startswith(prefix) and k != prefix)
        if ids:
            return _device_model(ids[0]), prefix + "<id>"
    for key in (PRODUCT_NAME_LABEL, BETA_PRODUCT_NAME_LABEL):
        model = model_from_product_name(labels.get(key) or "")
        if model:
            return model, key
    family = normalise_model(labels.get(FAMILY_LABEL))
    if family:
        return f"{_UNKNOWN_PREFIX}{family}", FAMILY_LABEL
    return None, ""


def _ready(status: Mapping[str, Any]) -> bool:
    for condition in status.get("conditions") or ():
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def _int_quantity(value: object) -> int:
    try:
        return max(int(str(value)), 0)
    except ValueError:
        return 0


def node_gpus(node: Mapping[str, Any]) -> NodeGPUs:
    """Parse one Node object (full or :func:`compact_node`)."""
    meta = node.get("metadata") or {}
    labels: Mapping[str, str] = meta.get("labels") or {}
    status = node.get("status") or {}
    model, source = _labels_model(labels)
    product = labels.get(PRODUCT_NAME_LABEL) or labels.get(BETA_PRODUCT_NAME_LABEL)
    return NodeGPUs(
        name=str(meta.get("name") or ""),
        model=model,
        count=_int_quantity((status.get("allocatable") or {}).get(GPU_RESOURCE, 0)),
        schedulable=_ready(status) and not (node.get("spec") or {}).get("unschedulable"),
        source=source,
        product_name=product,
    )


def compact_node(node: dict[str, Any]) -> dict[str, Any]:
    """The part of a Node aimctrl keeps in its cache: name, uid, resourceVersion, labels,
    ``spec.unschedulable``, ``status.allocatable`` and the ``Ready`` condition's status (no
    timestamps, so a kubelet heartbeat leaves the cached object as it was)."""
    meta = node.get("metadata") or {}
    status = node.get("status") or {}
    kept_meta = {k: meta[k] for k in ("name", "uid", "resourceVersion", "labels") if k in meta}
    out: dict[str, Any] = {"metadata": kept_meta}
    if (node.get("spec") or {}).get("unschedulable"):
        out["spec"] = {"unschedulable": True}
    ready = [
        {"type": "Ready", "status": c.get("status")}
        for c in status.get("conditions") or ()
        if c.get("type") == "Ready"
    ]
    out["status"] = {"allocatable": dict(status.get("allocatable") or {}), "conditions": ready}
    return out


@dataclass(frozen=True)
class ModelInventory:
    """One GPU model in the cluster: schedulable nodes, GPUs on the largest node, in total, and
    the product names its nodes carry."""

    model: str
    nodes: int
    max_per_node: int
    total: int
    product_names: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.model} ({self.max_per_node} per node)"


@dataclass(frozen=True)
class Inventory:
    """The GPUs of the schedulable nodes, by model (upper-cased names)."""

    models: Mapping[str, ModelInventory] = field(default_factory=dict)

    def get(self, model: str | None) -> ModelInventory | None:
        return self.models.get(normalise_model(model))

    @property
    def max_per_node(self) -> int:
        """GPUs on the largest GPU node of any model."""
        return max((m.max_per_node for m in self.models.values()), default=0)

    def describe(self) -> str:
        """``MI300X (8 per node), MI325X (8 per node)``, or that there are none."""
        if not self.models:
            return "no schedulable AMD GPU nodes"
        return ", ".join(self.models[k].describe() for k in sorted(self.models))

    def shape(self) -> dict[str, tuple[int, tuple[str, ...]]]:
        """What templates' and workloads' outputs depend on: per model, GPUs on the largest
        node and the product names seen (never node counts)."""
        return {k: (m.max_per_node, m.product_names) for k, m in self.models.items()}


def inventory(nodes: Iterable[NodeGPUs]) -> Inventory:
    """Sum the nodes that count (see :attr:`NodeGPUs.counts`) per GPU model."""
    acc: dict[str, tuple[int, int, int, set[str]]] = {}
    for node in nodes:
        if not node.counts:
            continue
        assert node.model is not None
        key = normalise_model(node.model)
        n, top, total, names = acc.get(key, (0, 0, 0, set()))
        if node.product_name:
            names.add(node.product_name)
        acc[key] = (n + 1, max(top, node.count), total + node.count, names)
    return Inventory(
        {
            k: ModelInventory(k, n, top, total, tuple(sorted(names)))
            for k, (n, top, total, names) in sorted(acc.items())
        }
    )


@dataclass(frozen=True)
class Availability:
    """Whether a template's GPUs exist on some schedulable node (condition ``GPUAvailable``)."""

    available: bool
    reason: str
    message: str


def _needs(model: str, count: int | None) -> str:
    if model and count:
        return f"{count} x {model}"
    if model:
        return model
    return f"{count} GPU(s) on one node"


def availability(model: str | None, count: int | None, inv: Inventory) -> Availability:
    """``GPUAvailable`` for a template needing ``count`` GPUs of ``model`` on one node.

    Without a model any GPU model fits; without a count one GPU (of the model) is enough;
    without either no GPU is needed. Reasons: ``GPUAvailable``, ``GPUNotInCluster`` (no
    schedulable node has the model, or no GPU at all), ``NotEnoughGPUsPerNode``.
    """
    name = normalise_model(model)
    if not name and not count:
        return Availability(True, "GPUAvailable", "needs no GPU")
    needs = _needs(name, count)
    has = f"the cluster has {inv.describe()}"
    wanted = count or 1
    if name:
        found = inv.get(name)
        if found is None:
            return Availability(False, "GPUNotInCluster", f"needs {needs}; {has}")
        top = found.max_per_node
    else:
        if not inv.models:
            return Availability(False, "GPUNotInCluster", f"needs {needs}; {has}")
        top = inv.max_per_node
    if top < wanted:
        return Availability(False, "NotEnoughGPUsPerNode", f"needs {needs}; {has}")
    return Availability(True, "GPUAvailable", f"needs {needs}; {has}")


def node_affinity(model: str | None, inv: Inventory) -> dict[str, Any] | None:
    """Required node affinity for a pod needing ``model`` GPUs: one term per label form (OR-ed
    by the scheduler) — device id ``In`` the model's ids, the ``beta.`` key likewise, ``Exists``
    on each count-encoded key, and the product names seen on the cluster's nodes of that model.
    None for no model."""
    name = normalise_model(model)
    if not name:
        return None
    ids = list(device_ids_of(name))
    terms: list[dict[str, Any]] = []
    if ids:
        for key in (DEVICE_ID_LABEL, BETA_DEVICE_ID_LABEL):
            terms.append({"matchExpressions": [{"key": key, "operator": "In", "values": ids}]})
        for prefix in _COUNT_PREFIXES:
            for device_id in ids:
                expr = {"key": prefix + device_id, "operator": "Exists"}
                terms.append({"matchExpressions": [expr]})
    found = inv.get(name)
    if found is not None and found.product_names:
        names = list(found.product_names)
        terms.append(
            {"matchExpressions": [{"key": PRODUCT_NAME_LABEL, "operator": "In", "values": names}]}
        )
    if not terms:
        # Known by product name only (or a family hint) and not on the cluster: a pod that
        # cannot schedule anywhere still says what it needs.
        terms.append(
            {"matchExpressions": [{"key": PRODUCT_NAME_LABEL, "operator": "In", "values": [name]}]}
        )
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
        }
    }
