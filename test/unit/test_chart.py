"""The Helm chart in charts/aimctrl: one source for CRDs and RBAC; what ``helm template`` renders.

Single source. The CRDs and RBAC rules are generated into config/ by ``make manifests``. The chart
carries verbatim copies (``crds/`` — Helm's convention: installed before the templates, never
upgraded or deleted by Helm — and ``files/rbac/``, which the RBAC templates read with
``.Files.Get``, because ``.Files`` cannot reach outside the chart directory). The first tests
fail when a copy differs from config/; ``make manifests`` writes the copies together with the
sources.

Rendering. ``helm`` is built from the Go module proxy (``helm.sh/helm/v3/cmd/helm``); it is found
in ``$HELM``, on PATH or in ``~/.cache/aimctrl/tools/helm-*/``. The rendering tests run the real
``helm lint`` and ``helm template`` and check the objects; they are skipped when helm is absent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "aimctrl"
KUBE_VERSION = "1.36.0"  # the control plane the tests run; helm's built-in default is older

#: chart copy → generated source
COPIES: dict[Path, Path] = {
    **{
        CHART / "crds" / p.name: p
        for p in sorted((ROOT / "config" / "crd" / "bases").glob("*.yaml"))
    },
    **{
        CHART / "files" / "rbac" / name: ROOT / "config" / "rbac" / name
        for name in ("role.yaml", "leader_election_role.yaml", "aim_roles.yaml")
    },
}

Objects = list[dict[str, Any]]


_STALE = "chart copy is stale: run `make manifests`"


def test_chart_crds_are_exactly_the_generated_crds() -> None:
    expected = {p.name for p in COPIES if p.parent.name == "crds"}
    present = {p.name for p in (CHART / "crds").glob("*.yaml")}
    assert present == expected, _STALE
    assert expected, "config/crd/bases has no CRDs"
    for copy, source in COPIES.items():
        assert copy.read_bytes() == source.read_bytes(), f"{copy.relative_to(ROOT)}: {_STALE}"


def _deployment(path: Path) -> dict[str, Any]:
    docs = yaml.safe_load_all(path.read_text())
    return next(d for d in docs if d and d.get("kind") == "Deployment")


def _values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


def test_default_values_are_hardened_like_the_kustomize_manager() -> None:
    pod = _deployment(ROOT / "config" / "manager" / "manager.yaml")["spec"]["template"]["spec"]
    values = _values()
    assert values["podSecurityContext"] == pod["securityContext"]
    assert values["securityContext"] == pod["containers"][0]["securityContext"]
    assert values["resources"] == pod["containers"][0]["resources"]


def test_chart_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]
    assert chart["apiVersion"] == "v2"


# ------------------------------------------------------------------------------ helm template


def _helm() -> str | None:
    candidates = [os.environ.get("HELM"), shutil.which("helm")]
    cache = Path.home() / ".cache" / "aimctrl" / "tools"
    candidates += [str(p) for p in sorted(cache.glob("helm-*/helm"), reverse=True)]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


@pytest.fixture(scope="module")
def helm() -> str:
    binary = _helm()
    if binary is None:
        pytest.skip("helm not found (build it: go install helm.sh/helm/v3/cmd/helm@v3.22.0)")
    return binary


Render = Callable[..., Objects]


@pytest.fixture(scope="module")
def render(helm: str) -> Render:
    def run(*sets: str, release: str = "aimctrl", namespace: str = "aimctrl-system") -> Objects:
        argv = [helm, "template", release, str(CHART), "--namespace", namespace]
        argv += ["--kube-version", KUBE_VERSION, "--include-crds"]
        for s in sets:
            argv += ["--set", s]
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        return [d for d in yaml.safe_load_all(out) if d]

    return run


def _one(objects: Objects, kind: str, name_suffix: str = "") -> dict[str, Any]:
    found = [
        o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix)
    ]
    assert len(found) == 1, [(o["kind"], o["metadata"]["name"]) for o in objects]
    return found[0]


def _rules(path: Path) -> list[dict[str, Any]]:
    doc = next(d for d in yaml.safe_load_all(path.read_text()) if d)
    rules: list[dict[str, Any]] = doc["rules"]
    return rules


def _args(objects: Objects) -> list[str]:
    container = _one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["aimctrl"]
    args: list[str] = container["args"]
    return args


def test_helm_lint_passes(helm: str) -> None:
    result = subprocess.run(
        [helm, "lint", str(CHART), "--kube-version", KUBE_VERSION],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_install_renders_every_object_of_config_default(render: Render) -> None:
    objects = render()
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        ["CustomResourceDefinition"] * 7
        + ["ClusterRole"] * 4  # manager role + admin/edit/view aggregation
        + ["ClusterRoleBinding", "Deployment", "Role", "RoleBinding", "Service", "ServiceAccount"]
    )
    crds = {o["metadata"]["name"] for o in objects if o["kind"] == "CustomResourceDefinition"}
    generated = {
        yaml.safe_load(p.read_text())["metadata"]["name"]
        for p in (ROOT / "config" / "crd" / "bases").glob("*.yaml")
    }
    assert crds == generated


def test_rendered_rbac_rules_equal_the_generated_roles(render: Render) -> None:
    objects = render()
    rbac = ROOT / "config" / "rbac"
    assert _one(objects, "ClusterRole", "-manager-role")["rules"] == _rules(rbac / "role.yaml")
    assert _one(objects, "Role")["rules"] == _rules(rbac / "leader_election_role.yaml")


def test_bindings_grant_the_roles_to_the_manager_service_account(render: Render) -> None:
    objects = render(release="prod", namespace="platform")
    sa = _one(objects, "ServiceAccount")["metadata"]
    pod = _one(objects, "Deployment")["spec"]["template"]["spec"]
    assert sa["name"] == pod["serviceAccountName"] == "prod-aimctrl-controller-manager"
    subject = {"kind": "ServiceAccount", "name": sa["name"], "namespace": "platform"}
    crb = _one(objects, "ClusterRoleBinding")
    assert crb["subjects"] == [subject]
    assert (
        crb["roleRef"]["name"] == _one(objects, "ClusterRole", "-manager-role")["metadata"]["name"]
    )
    rb = _one(objects, "RoleBinding")
    assert rb["subjects"] == [subject]
    assert rb["metadata"]["namespace"] == "platform"
    assert rb["roleRef"]["name"] == _one(objects, "Role")["metadata"]["name"]


def test_default_manager_args_mirror_config_manager(render: Render) -> None:
    objects = render()
    args = _args(objects)
    assert args[0] == "run"
    for flag in (
        "--leader-elect",
        "--leader-election-namespace=aimctrl-system",
        "--metrics-bind-address=:8080",
        "--health-probe-bind-address=:8081",
        "--operator-namespace=aimctrl-system",
        "--discovery-mode=job",
        "--discovery-image=aimctrl:0.1.0",
    ):
        assert flag in args, args
    pod = _one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"] == _values()["podSecurityContext"]
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["image"] == "aimctrl:0.1.0"
    assert {"name": "AIMCTRL_IMAGE", "value": "aimctrl:0.1.0"} in container["env"]
    service = _one(objects, "Service")
    assert (
        service["spec"]["selector"]
        == _one(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    )
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"


def test_values_drive_image_replicas_discovery_and_operator_namespace(render: Render) -> None:
    objects = render(
        "image.repository=registry.example/aimctrl",
        "image.tag=1.2.3",
        "replicas=3",
        "operatorNamespace=kaiwo-system",
        "discovery.mode=inline",
        "discovery.image=registry.example/aimctrl-discover:1.2.3",
        "workers=4",
        "resources.limits.memory=1Gi",
    )
    deployment = _one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/aimctrl:1.2.3"
    assert container["resources"]["limits"]["memory"] == "1Gi"
    args = _args(objects)
    assert "--operator-namespace=kaiwo-system" in args
    assert "--discovery-mode=inline" in args
    assert "--discovery-image=registry.example/aimctrl-discover:1.2.3" in args
    assert "--workers=4" in args
    # The Lease stays in the release namespace, where the leader-election Role grants it.
    assert "--leader-election-namespace=aimctrl-system" in args


def test_leader_election_off_drops_the_flag_and_its_role(render: Render) -> None:
    objects = render("leaderElection.enabled=false")
    assert not any(a.startswith("--leader-elect") for a in _args(objects))
    assert not [o for o in objects if o["kind"] in ("Role", "RoleBinding")]


def test_rbac_and_service_account_can_be_brought_by_the_user(render: Render) -> None:
    objects = render("rbac.create=false", "serviceAccount.create=false", "serviceAccount.name=mine")
    kinds = {o["kind"] for o in objects}
    assert kinds == {"CustomResourceDefinition", "Deployment", "Service"}
    assert _one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "mine"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("discovery.mode=sidecar",), "discovery.mode must be job or inline"),
        (("replicas=2", "leaderElection.enabled=false"), "needs leaderElection.enabled"),
    ],
)
def test_invalid_values_fail_rendering_with_a_reason(
    helm: str, sets: tuple[str, ...], message: str
) -> None:
    argv = [helm, "template", "x", str(CHART), "--kube-version", KUBE_VERSION]
    for s in sets:
        argv += ["--set", s]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert message in result.stderr
