"""RBAC rules are declared as data, merged without wildcards, deterministically."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest

from aimctrl.rbac import MANAGER_RULES, PolicyRule, collect_rules, merge_rules, to_manifest


def test_wildcards_are_rejected_at_declaration() -> None:
    with pytest.raises(ValueError, match="wildcards"):
        PolicyRule(api_groups=("",), resources=("pods",), verbs=("*",))
    with pytest.raises(ValueError, match="wildcards"):
        PolicyRule(api_groups=("*",), resources=("pods",), verbs=("get",))


def test_lists_must_be_non_empty_tuples() -> None:
    with pytest.raises(ValueError, match="non-empty tuple"):
        PolicyRule(api_groups=("",), resources=(), verbs=("get",))
    with pytest.raises(ValueError, match="non-empty tuple"):
        PolicyRule(api_groups=("",), resources=["pods"], verbs=("get",))  # type: ignore[arg-type]


def test_merge_unions_verbs_and_groups_resources_by_verb_set() -> None:
    merged = merge_rules(
        [
            PolicyRule(api_groups=("batch",), resources=("jobs",), verbs=("get", "list")),
            PolicyRule(api_groups=("batch",), resources=("jobs",), verbs=("watch", "create")),
            PolicyRule(api_groups=("",), resources=("pods", "secrets"), verbs=("get",)),
            PolicyRule(api_groups=("",), resources=("pods/log",), verbs=("get",)),
        ]
    )
    assert merged == (
        PolicyRule(api_groups=("",), resources=("pods", "pods/log", "secrets"), verbs=("get",)),
        PolicyRule(
            api_groups=("batch",), resources=("jobs",), verbs=("create", "get", "list", "watch")
        ),
    )


def test_merge_is_independent_of_declaration_order() -> None:
    rules = [
        PolicyRule(api_groups=("apps",), resources=("deployments",), verbs=("get", "patch")),
        PolicyRule(api_groups=("",), resources=("services",), verbs=("patch", "get")),
        PolicyRule(api_groups=("", "apps"), resources=("events",), verbs=("create",)),
    ]
    assert merge_rules(rules) == merge_rules(reversed(rules))


@pytest.fixture
def fake_controllers() -> Iterator[str]:
    package = types.ModuleType("fake_controllers")
    package.__path__ = []
    package.RBAC = (  # type: ignore[attr-defined]
        PolicyRule(api_groups=("aim.silogen.ai",), resources=("aimmodels",), verbs=("get",)),
    )
    sys.modules["fake_controllers"] = package
    yield "fake_controllers"
    del sys.modules["fake_controllers"]


def test_collect_includes_manager_rules_and_declarations(fake_controllers: str) -> None:
    rules = collect_rules(fake_controllers)
    assert set(MANAGER_RULES) <= set(rules)
    assert (
        PolicyRule(api_groups=("aim.silogen.ai",), resources=("aimmodels",), verbs=("get",))
        in rules
    )


def test_collect_rejects_malformed_declarations(fake_controllers: str) -> None:
    sys.modules[fake_controllers].RBAC = [("", "pods", "get")]  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="tuple of PolicyRule"):
        collect_rules(fake_controllers)


def test_collect_walks_the_real_controllers_package() -> None:
    assert set(MANAGER_RULES) <= set(collect_rules())


def test_manifest_form_uses_kubernetes_keys() -> None:
    rule = PolicyRule(api_groups=("",), resources=("events",), verbs=("create", "patch"))
    assert to_manifest(rule) == {
        "apiGroups": [""],
        "resources": ["events"],
        "verbs": ["create", "patch"],
    }
