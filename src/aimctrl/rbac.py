"""RBAC rules: declared next to the code that needs them, merged into one ClusterRole.

Each module of :mod:`aimctrl.controllers` may declare ``RBAC: tuple[PolicyRule, ...]`` at module
level (kubebuilder's ``+kubebuilder:rbac`` markers, as data). :func:`collect_rules` imports every
such module, adds the manager's own rules and merges them. Guarantees:

* no wildcards: a rule with ``*`` in any list is rejected when it is declared;
* the merged set grants exactly the union of the declared (group, resource, verb) triples;
* the output is deterministic: one rule per (API group, verb set), resources sorted, rules sorted.

Leader election (leases) is not here: it lives in a namespaced Role in the manager's namespace
(:data:`LEADER_ELECTION_RULES`).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LEADER_ELECTION_RULES",
    "MANAGER_RULES",
    "PolicyRule",
    "collect_rules",
    "merge_rules",
    "to_manifest",
]


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """Verbs allowed on resources of API groups (``""`` is the core group)."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]

    def __post_init__(self) -> None:
        for name in ("api_groups", "resources", "verbs"):
            values = getattr(self, name)
            if not isinstance(values, tuple) or not values:
                raise ValueError(f"PolicyRule.{name} must be a non-empty tuple, got {values!r}")
            if any("*" in value for value in values):
                raise ValueError(f"PolicyRule.{name} must not contain wildcards: {values!r}")


MANAGER_RULES: tuple[PolicyRule, ...] = (
    # The event recorder: events are created, and patched when a repeat is aggregated.
    PolicyRule(api_groups=("",), resources=("events",), verbs=("create", "patch")),
)
"""Rules the manager itself needs, whatever controllers run."""

LEADER_ELECTION_RULES: tuple[PolicyRule, ...] = (
    PolicyRule(
        api_groups=("coordination.k8s.io",),
        resources=("leases",),
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    PolicyRule(api_groups=("",), resources=("events",), verbs=("create", "patch")),
)
"""Rules of the namespaced leader-election Role in the manager's namespace."""


def merge_rules(rules: Iterable[PolicyRule]) -> tuple[PolicyRule, ...]:
    """The union of ``rules``, one rule per (API group, verb set), sorted."""
    verbs_by_target: dict[tuple[str, str], set[str]] = defaultdict(set)
    for rule in rules:
        for group in rule.api_groups:
            for resource in rule.resources:
                verbs_by_target[(group, resource)].update(rule.verbs)
    resources_by_grant: dict[tuple[str, tuple[str, ...]], list[str]] = defaultdict(list)
    for (group, resource), verbs in verbs_by_target.items():
        resources_by_grant[(group, tuple(sorted(verbs)))].append(resource)
    merged = [
        PolicyRule(api_groups=(group,), resources=tuple(sorted(resources)), verbs=verbs)
        for (group, verbs), resources in resources_by_grant.items()
    ]
    return tuple(sorted(merged, key=lambda r: (r.api_groups, r.resources, r.verbs)))


def _declared(module: object) -> tuple[PolicyRule, ...]:
    rules = getattr(module, "RBAC", ())
    if not isinstance(rules, tuple) or not all(isinstance(r, PolicyRule) for r in rules):
        name = getattr(module, "__name__", module)
        raise TypeError(f"{name}.RBAC must be a tuple of PolicyRule")
    return rules


def collect_rules(package: str = "aimctrl.controllers") -> tuple[PolicyRule, ...]:
    """The manager's ClusterRole rules: every ``RBAC`` declared under ``package``, merged with
    :data:`MANAGER_RULES`."""
    root = importlib.import_module(package)
    rules: list[PolicyRule] = [*MANAGER_RULES, *_declared(root)]
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        rules.extend(_declared(importlib.import_module(info.name)))
    return merge_rules(rules)


def to_manifest(rule: PolicyRule) -> dict[str, Any]:
    """The rule as it appears in a Role or ClusterRole."""
    return {
        "apiGroups": list(rule.api_groups),
        "resources": list(rule.resources),
        "verbs": list(rule.verbs),
    }
