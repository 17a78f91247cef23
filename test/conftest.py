"""Fixtures shared by the integration and e2e suites: one real control plane per test session.

The control plane is the real thing (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, KWOK) started by :mod:`aimctrl.testing.controlplane` from binaries that
``hack/build-testbin.sh`` built from the Go module proxy. It starts once per pytest session, only
when a test asks for it, and is stopped at the end; on failure its component logs are in
``<dir>/logs`` (the path is printed in the session header).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aimctrl.machinery.decoded import VERIFY_ENV
from aimctrl.testing.controlplane import ControlPlane, repo_root
from aimctrl.testing.helpers import Kubectl

# Every test (and every manager process a test starts, which inherits the environment) checks
# that no reader changes a decoded object shared through a cache (aimctrl.machinery.decoded).
os.environ[VERIFY_ENV] = "1"

CRD_DIR = repo_root() / "config" / "crd" / "bases"


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    cp = ControlPlane()
    try:
        cp.start()
    except Exception:
        cp.stop()
        raise
    print(f"\ncontrol plane: {cp.server} (logs in {cp.dir / 'logs'})")
    yield cp
    cp.stop()


@pytest.fixture(scope="session")
def kubeconfig_path(control_plane: ControlPlane) -> str:
    return str(control_plane.kubeconfig)


@pytest.fixture(scope="session")
def kubectl(kubeconfig_path: str) -> Kubectl:
    return Kubectl(kubeconfig_path)


@pytest.fixture(scope="session")
def crds_installed(kubectl: Kubectl) -> None:
    """The generated AIM CRDs applied and Established."""
    kubectl("apply", "--server-side", "-f", str(CRD_DIR))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRD_DIR))


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace per test, deleted (without waiting) afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def dump_on_failure() -> Callable[[Kubectl, str], str]:
    """Events and describe output of a namespace, for assertion messages."""

    def dump(k: Kubectl, ns: str) -> str:
        out = k.run("get", "events", "-n", ns, "--sort-by=.lastTimestamp", check=False).stdout
        out += k.run("describe", "all", "-n", ns, check=False).stdout
        return out

    return dump


os.environ.setdefault("AIMCTRL_REPO", str(Path(repo_root())))
