"""The cluster's GPU fleet, kept from one shared Node informer (SPEC §8).

:class:`Fleet` is an event handler on the Node informer (whose cache holds only
:func:`~aimctrl.resolve.gpus.compact_node` of each node). Guarantees:

* it keeps one :class:`~aimctrl.resolve.gpus.NodeGPUs` per node and the per-model counts, updated
  in O(1) per node event; :meth:`Fleet.inventory` returns an immutable snapshot, rebuilt at most
  once per change (O(GPU models)), so reconcilers read it for free;
* after each change it calls its subscribers with the GPU models whose part of
  :meth:`~aimctrl.resolve.gpus.Inventory.shape` moved (largest node, product names, presence)
  — a node joining a model whose largest node it does not change, or a heartbeat, notifies
  nobody; subscribers only enqueue;
* ``aimctrl_cluster_gpus{model}`` follows every change;
* :meth:`Fleet.has_synced` is true once the Node informer's first list has been handed to it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from aimctrl.machinery.informer import SharedInformer
from aimctrl.machinery.store import DeletedFinalStateUnknown, Object, unwrap
from aimctrl.rbac import PolicyRule
from aimctrl.resolve.gpus import Inventory, ModelInventory, NodeGPUs, node_gpus, normalise_model

__all__ = ["RBAC", "Fleet", "FleetChange"]

log = structlog.get_logger(__name__)

RBAC: tuple[PolicyRule, ...] = (
    PolicyRule(api_groups=("",), resources=("nodes",), verbs=("get", "list", "watch")),
)
"""What reading the fleet needs; every controller that reads it declares these too."""


@dataclass(frozen=True)
class FleetChange:
    """GPU models whose entry in the inventory's shape moved (added, removed or changed)."""

    models: frozenset[str]


class _ModelTally:
    """One GPU model's counted nodes: GPUs per node and product names, as multisets."""

    __slots__ = ("names", "nodes", "per_node")

    def __init__(self) -> None:
        self.nodes = 0
        self.per_node: Counter[int] = Counter()
        self.names: Counter[str] = Counter()

    def add(self, node: NodeGPUs, sign: int) -> None:
        self.nodes += sign
        self.per_node[node.count] += sign
        if not self.per_node[node.count]:
            del self.per_node[node.count]
        if node.product_name:
            self.names[node.product_name] += sign
            if not self.names[node.product_name]:
                del self.names[node.product_name]

    def snapshot(self, model: str) -> ModelInventory:
        return ModelInventory(
            model=model,
            nodes=self.nodes,
            max_per_node=max(self.per_node, default=0),
            total=sum(k * v for k, v in self.per_node.items()),
            product_names=tuple(sorted(self.names)),
        )


class Fleet:
    """The GPU inventory of the cluster, from the Node informer's events."""

    def __init__(
        self,
        nodes: SharedInformer,
        *,
        set_gauge: Callable[[Mapping[str, int]], None] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._nodes: dict[str, NodeGPUs] = {}
        self._tallies: dict[str, _ModelTally] = {}
        self._snapshot: Inventory | None = Inventory()
        self._subscribers: list[Callable[[FleetChange], None]] = []
        self._set_gauge = set_gauge
        # Nodes already cached count at once; the registration replays them too (a no-op then).
        for node in nodes.indexer.list():
            self._set(node, node_gpus(node))
        self._registration = nodes.add_event_handler(self)

    # -- reading ----------------------------------------------------------------------------

    def inventory(self) -> Inventory:
        """The current inventory (immutable; the same object until the fleet changes)."""
        with self._lock:
            if self._snapshot is None:
                self._snapshot = Inventory(
                    {k: t.snapshot(k) for k, t in sorted(self._tallies.items())}
                )
            return self._snapshot

    def has_synced(self) -> bool:
        return self._registration.has_synced()

    def subscribe(self, callback: Callable[[FleetChange], None]) -> None:
        """Call ``callback`` (on the informer's dispatch thread) after each change of shape."""
        self._subscribers.append(callback)

    # -- event handler ----------------------------------------------------------------------

    def on_add(self, obj: Object, is_initial_list: bool) -> None:
        self._set(obj, node_gpus(obj))

    def on_update(self, old: Object, new: Object) -> None:
        self._set(new, node_gpus(new))

    def on_delete(self, obj: Object | DeletedFinalStateUnknown) -> None:
        self._set(unwrap(obj), None)

    def _set(self, obj: Object, parsed: NodeGPUs | None) -> None:
        name = str((obj.get("metadata") or {}).get("name") or "")
        with self._lock:
            old = self._nodes.get(name)
            if old == parsed:
                return
            touched = {n.model for n in (old, parsed) if n is not None and n.counts and n.model}
            keys = {normalise_model(m) for m in touched}
            before = {k: self._shape_of(k) for k in keys}
            if old is not None and old.counts:
                self._tally(old, -1)
            if parsed is None:
                self._nodes.pop(name, None)
            else:
                self._nodes[name] = parsed
                if parsed.counts:
                    self._tally(parsed, +1)
            changed = frozenset(k for k in keys if self._shape_of(k) != before[k])
            if not keys:
                return
            self._snapshot = None
        inv = self.inventory()
        if self._set_gauge is not None:
            self._set_gauge({k: m.total for k, m in inv.models.items()})
        if changed:
            log.info("gpu fleet changed", models=sorted(changed), fleet=inv.describe())
            for callback in self._subscribers:
                callback(FleetChange(changed))

    def _tally(self, node: NodeGPUs, sign: int) -> None:
        key = normalise_model(node.model)
        tally = self._tallies.setdefault(key, _ModelTally())
        tally.add(node, sign)
        if tally.nodes == 0:
            del self._tallies[key]

    def _shape_of(self, key: str) -> tuple[int, tuple[str, ...]] | None:
        tally = self._tallies.get(key)
        if tally is None:
            return None
        return max(tally.per_node, default=0), tuple(sorted(tally.names))
