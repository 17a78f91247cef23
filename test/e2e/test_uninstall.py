"""Uninstalling leaves nothing behind: no CRDs (so no AIM objects), no RBAC, no aimctrl-system,
and none of the workloads aimctrl made for services in the users' namespaces. The users'
namespaces themselves (the samples' ``ml-team``) are theirs and stay.

The order matters and is the README's: AIM objects first (``kubectl delete aim --all -A
--cascade=foreground``: the garbage collector removes the Deployments, Services, Jobs and
templates they own before they go), then the CRDs. Deleting the CRDs first orphans those
workloads for good: the garbage collector cannot resolve an owner whose kind no longer exists, so
it never deletes its dependents (seen here: two Deployments, two Services and three discovery
Jobs still present 90 s after the CRDs were gone).

Runs last in the session (files run in name order): it stops the manager and deletes what the
install created — ``kubectl delete -k config/default`` on kind; on the dev cluster the
kustomizations hack/run-local.sh applied (config/rbac, config/crd) and the namespace it created.
"""

from __future__ import annotations

import yaml

from aimctrl.testing.helpers import eventually

from .conftest import OPERATOR_NAMESPACE, ROOT, Installation


def test_uninstall_removes_crds_rbac_and_the_operator_namespace(
    installation: Installation,
) -> None:
    k = installation.kubectl
    made = _workloads(installation)
    assert any(w.startswith("Deployment ") for w in made), made  # the samples' service runs
    installation.stop_manager()
    k("delete", "aim", "--all", "-A", "--cascade=foreground", "--wait=true", "--timeout=120s")
    if installation.mode == "kind":
        k("delete", "-k", str(ROOT / "config" / "default"), "--ignore-not-found", "--wait=true")
    else:
        k("delete", "-k", str(ROOT / "config" / "rbac"), "--ignore-not-found")
        k("delete", "-k", str(ROOT / "config" / "crd"), "--ignore-not-found", "--wait=true")
        k("delete", "namespace", OPERATOR_NAMESPACE, "--ignore-not-found", "--wait=false")
    installation.uninstalled = True

    crds = [
        o["metadata"]["name"]
        for o in k.json("get", "crd")["items"]
        if o["spec"]["group"] == "aim.silogen.ai"
    ]
    assert crds == []
    assert k.run("get", "aim", "-A", check=False).returncode != 0, "the aim category is gone"

    rbac = ROOT / "config" / "rbac"
    for path in sorted(rbac.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            ns = doc["metadata"].get("namespace")
            args = ["get", doc["kind"].lower(), doc["metadata"]["name"]]
            args += ["-n", ns] if ns else []
            result = k.run(*args, check=False)
            assert "NotFound" in result.stderr, (path.name, doc["metadata"]["name"])

    def namespace_gone() -> bool:
        return "NotFound" in k.run("get", "namespace", OPERATOR_NAMESPACE, check=False).stderr

    eventually(namespace_gone, timeout=90, what=f"namespace {OPERATOR_NAMESPACE} deleted")
    eventually(
        lambda: not _workloads(installation),
        timeout=90,
        what=f"aimctrl's workloads garbage-collected (were: {', '.join(made)})",
    )


def _workloads(installation: Installation) -> list[str]:
    """Deployments, Services and Jobs aimctrl made, in every namespace."""
    found = installation.kubectl.json(
        "get", "deployments,services,jobs", "-A", "-l", "app.kubernetes.io/managed-by=aimctrl"
    )
    return [
        f"{o['kind']} {o['metadata']['namespace']}/{o['metadata']['name']}" for o in found["items"]
    ]
