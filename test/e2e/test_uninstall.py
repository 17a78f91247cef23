"""Uninstalling leaves nothing behind: no CRDs (so no AIM objects), no RBAC, no aimctrl-system.

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
    installation.stop_manager()
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
