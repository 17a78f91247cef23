"""The committed manifests under config/ are exactly what hack/gen_manifests.py renders."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import yaml

ROOT = Path(__file__).resolve().parents[2]
STALE = "generated manifests are stale: run `make manifests`"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_manifests", ROOT / "hack" / "gen_manifests.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RENDERED: dict[str, str] = _generator().render_all()


def test_committed_manifests_match_the_code() -> None:
    stale = [
        rel
        for rel, text in sorted(RENDERED.items())
        if not (ROOT / rel).exists() or (ROOT / rel).read_text() != text
    ]
    assert not stale, f"{STALE}: {', '.join(stale)}"


def test_no_stale_crd_files_are_left_behind() -> None:
    committed = {
        p.relative_to(ROOT).as_posix() for p in (ROOT / "config" / "crd" / "bases").glob("*.yaml")
    }
    extra = committed - set(RENDERED)
    assert not extra, f"{STALE}: remove {', '.join(sorted(extra))}"


def test_rendering_is_deterministic() -> None:
    assert _generator().render_all() == RENDERED


def test_rendered_yaml_parses_and_has_no_anchors() -> None:
    for rel, text in RENDERED.items():
        assert "&id" not in text, rel
        docs = [d for d in yaml.safe_load_all(text) if d]
        assert docs, rel


def test_manager_role_is_a_cluster_role_without_wildcards() -> None:
    (role,) = yaml.safe_load_all(RENDERED["config/rbac/role.yaml"].split("---\n", 1)[1])
    assert role["kind"] == "ClusterRole"
    assert role["metadata"]["name"] == "aimctrl-manager-role"
    for rule in role["rules"]:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key]
    assert not any("leases" in r["resources"] for r in role["rules"])


def test_leader_election_is_a_namespaced_role() -> None:
    (role,) = [
        d for d in yaml.safe_load_all(RENDERED["config/rbac/leader_election_role.yaml"]) if d
    ]
    assert role["kind"] == "Role"
    assert role["metadata"]["namespace"] == "aimctrl-system"
    leases = next(r for r in role["rules"] if "leases" in r["resources"])
    assert leases["apiGroups"] == ["coordination.k8s.io"]
    assert set(leases["verbs"]) == {"get", "list", "watch", "create", "update", "patch", "delete"}


def test_aggregated_roles_never_grant_writes_on_cluster_scoped_kinds() -> None:
    roles = {
        d["metadata"]["name"]: d
        for d in yaml.safe_load_all(RENDERED["config/rbac/aim_roles.yaml"])
        if d
    }
    assert set(roles) == {"aimctrl-aim-admin", "aimctrl-aim-editor", "aimctrl-aim-viewer"}
    for name in ("aimctrl-aim-admin", "aimctrl-aim-editor"):
        for rule in roles[name]["rules"]:
            assert not any(r.startswith("aimcluster") for r in rule["resources"]), name
    viewer_resources = {
        r for rule in roles["aimctrl-aim-viewer"]["rules"] for r in rule["resources"]
    }
    assert "aimclustermodels" in viewer_resources
