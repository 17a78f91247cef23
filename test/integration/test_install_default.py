"""``kubectl apply -k config/default`` against the dev control plane: CRDs, RBAC and the manager
Deployment are created, and the manager's pod (simulated by KWOK: no container runs here) is
scheduled and becomes Ready with the hardened pod spec of config/manager.

Only the Deployment is removed afterwards: the CRDs and the aimctrl-system namespace are shared
with the rest of the session (uninstall is covered by the e2e suite, on its own cluster).
"""

from __future__ import annotations

import pytest

from aimctrl.testing.controlplane import repo_root
from aimctrl.testing.helpers import Kubectl, eventually

pytestmark = pytest.mark.integration

NS = "aimctrl-system"
DEPLOYMENT = "aimctrl-controller-manager"


def test_apply_config_default_creates_the_hardened_manager_deployment(
    kubectl: Kubectl, operator_namespace: str
) -> None:
    assert operator_namespace == NS
    out = kubectl(
        "apply", "--server-side", "--force-conflicts", "-k", str(repo_root() / "config" / "default")
    )
    assert f"deployment.apps/{DEPLOYMENT}" in out
    assert "customresourcedefinition.apiextensions.k8s.io/aimclustermodels.aim.silogen.ai" in out
    assert "clusterrole.rbac.authorization.k8s.io/aimctrl-manager-role" in out
    try:

        def available() -> bool:
            dep = kubectl.json("get", "deployment", DEPLOYMENT, "-n", NS)
            return int(dep.get("status", {}).get("availableReplicas", 0)) >= 1

        eventually(available, timeout=90, what="manager Deployment available (KWOK pod)")
        pods = kubectl.json("get", "pods", "-n", NS, "-l", "control-plane=controller-manager")
        if not pods["items"]:
            pods = kubectl.json("get", "pods", "-n", NS)
            pods["items"] = [
                p for p in pods["items"] if p["metadata"]["name"].startswith(DEPLOYMENT)
            ]
        pod = pods["items"][0]
        spec = pod["spec"]
        assert spec["serviceAccountName"] == DEPLOYMENT
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        container = spec["containers"][0]
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert container["args"][0] == "run"
        assert any(a.startswith("--leader-elect") for a in container["args"])
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert pod["status"]["phase"] == "Running"
        assert pod["spec"]["nodeName"].startswith("kwok-")
    finally:
        kubectl.run("delete", "deployment", DEPLOYMENT, "-n", NS, "--ignore-not-found", check=False)
