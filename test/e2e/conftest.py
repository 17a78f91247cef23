"""The e2e suite's cluster: aimctrl installed from config/ and driven with kubectl only.

Two targets:

* **kind** (``AIMCTRL_E2E_KUBECONFIG`` set, by ``hack/kind-e2e.sh``): aimctrl already runs there
  from the real image (``kubectl apply -k config/default``). Its metrics and probe ports are
  reached with ``kubectl port-forward``. Sample images go to the registries that script starts:
  ``AIMCTRL_E2E_REGISTRY_PUSH`` / ``AIMCTRL_E2E_REGISTRY`` (as the host / the cluster reach the
  open one) and the ``_AUTH`` pair plus ``AIMCTRL_E2E_REGISTRY_USER`` / ``_PASSWORD`` for the
  basic-auth one.
* **dev** (default; what ``.ci/run`` runs): a real control plane of its own (test/conftest.py),
  two local registries with the sample images, the discovery-pod runner (the harness's kubelet
  for discovery pods only) and the manager as a subprocess: exactly what ``hack/run-local.sh``
  does — namespace, ``kubectl apply -k config/crd`` and ``-k config/rbac``, then ``aimctrl run``
  impersonating the controller's ServiceAccount, so the generated RBAC is all it gets.

On a failed test the manager's log tail, the cluster's events and ``kubectl describe`` of every
AIM object are printed with the failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from aimctrl.testing.controlplane import ControlPlane, free_port, kubectl_bin, repo_root
from aimctrl.testing.helpers import Kubectl, eventually
from aimctrl.testing.images import push_samples
from aimctrl.testing.podrunner import DiscoveryPodRunner
from aimctrl.testing.registry import LocalRegistries

ROOT = repo_root()
OPERATOR_NAMESPACE = "aimctrl-system"
SERVICE_ACCOUNT = "aimctrl-controller-manager"
SA_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{SERVICE_ACCOUNT}"
KIND_KUBECONFIG = os.environ.get("AIMCTRL_E2E_KUBECONFIG", "")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.e2e)


@dataclass
class Registry:
    """Where discovery finds the sample images; ``refs``: sample name → reference."""

    refs: dict[str, str]
    auth_registry: str
    user: str
    password: str = field(repr=False)


@dataclass
class Installation:
    """aimctrl running against the cluster of ``kubectl``."""

    mode: str  # "dev" or "kind"
    kubectl: Kubectl
    metrics_url: str
    probe_url: str
    registry: Registry
    manager_log: Callable[[], str]
    stop_manager: Callable[[], None]
    uninstalled: bool = False


@pytest.fixture(scope="session")
def kubeconfig_path() -> Iterator[str]:
    """kind's kubeconfig, or that of a control plane of the e2e suite's own (dev mode).

    Its own, not the integration suite's: the e2e suite installs and uninstalls aimctrl on a
    clean cluster, and a second pod runner on a shared cluster would run discovery pods twice.
    """
    if KIND_KUBECONFIG:
        yield KIND_KUBECONFIG
        return
    cp = ControlPlane()
    try:
        cp.start()
    except Exception:
        cp.stop()
        raise
    print(f"\ne2e control plane: {cp.server} (logs in {cp.dir / 'logs'})")
    yield str(cp.kubeconfig)
    cp.stop()


@pytest.fixture(scope="session")
def kubectl(kubeconfig_path: str) -> Kubectl:
    """kubectl on the e2e cluster. Defined here, not inherited: a session fixture is cached once
    per definition, and test/conftest.py's would still point at the integration suite's cluster
    when both suites run in one pytest session."""
    return Kubectl(kubeconfig_path)


def install_crds_and_rbac(kubectl: Kubectl) -> None:
    """What hack/run-local.sh does before it starts the manager."""
    namespace = kubectl("create", "namespace", OPERATOR_NAMESPACE, "--dry-run=client", "-o", "yaml")
    kubectl("apply", "-f", "-", input=namespace)
    kubectl("apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "config" / "crd"))
    kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "-f",
        str(ROOT / "config" / "crd" / "bases"),
    )
    kubectl("apply", "-k", str(ROOT / "config" / "rbac"))


def _wait_http_ok(url: str, *, timeout: float, alive: Callable[[], bool]) -> None:
    def ok() -> bool:
        assert alive(), "the manager exited"
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    eventually(ok, timeout=timeout, what=url)


@pytest.fixture(scope="session")
def installation(
    kubectl: Kubectl, kubeconfig_path: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installation]:
    if KIND_KUBECONFIG:
        yield from _kind_installation(kubectl)
    else:
        yield from _dev_installation(kubectl, kubeconfig_path, tmp_path_factory)


def _dev_installation(
    kubectl: Kubectl, kubeconfig: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installation]:
    if shutil.which("docker-registry") is None or shutil.which("htpasswd") is None:
        pytest.skip("docker-registry and htpasswd (apache2-utils) are needed")
    install_crds_and_rbac(kubectl)
    registries = LocalRegistries(tmp_path_factory.mktemp("registries"), token=False)
    env = registries.start()
    runner: DiscoveryPodRunner | None = None
    manager: subprocess.Popen[bytes] | None = None
    try:
        refs = push_samples(env.registry, env.registry_auth, env.user, env.password)
        runner = DiscoveryPodRunner(kubeconfig, log_dir=tmp_path_factory.mktemp("podrunner"))
        runner.start()
        metrics, probes = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        log_path = tmp_path_factory.mktemp("manager") / "manager.log"
        argv = [
            str(Path(sys.executable).parent / "aimctrl"),
            "run",
            f"--kubeconfig={kubeconfig}",
            f"--impersonate-user={SA_USER}",
            "--impersonate-group=system:serviceaccounts",
            f"--impersonate-group=system:serviceaccounts:{OPERATOR_NAMESPACE}",
            f"--operator-namespace={OPERATOR_NAMESPACE}",
            "--discovery-mode=job",
            f"--metrics-bind-address={metrics}",
            f"--health-probe-bind-address={probes}",
            "--log-format=json",
        ]
        with log_path.open("wb") as log:
            manager = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        proc = manager

        def stop() -> None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

        def alive() -> bool:
            return proc.poll() is None

        try:
            _wait_http_ok(f"http://{probes}/readyz", timeout=90, alive=alive)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{log_path.read_text()[-4000:]}") from None
        print(f"\ne2e: manager pid {proc.pid}, log {log_path}, metrics {metrics}")
        yield Installation(
            mode="dev",
            kubectl=kubectl,
            metrics_url=f"http://{metrics}/metrics",
            probe_url=f"http://{probes}",
            registry=Registry(
                refs=refs, auth_registry=env.registry_auth, user=env.user, password=env.password
            ),
            manager_log=lambda: log_path.read_text(errors="replace"),
            stop_manager=stop,
        )
        stop()
    finally:
        if manager is not None and manager.poll() is None:
            manager.kill()
            manager.wait()
        if runner is not None:
            runner.stop()
        registries.stop()


def _port_forward(kubeconfig: str, *ports: int) -> tuple[subprocess.Popen[str], list[int]]:
    """``kubectl port-forward`` to the manager Deployment; returns the local ports."""
    proc = subprocess.Popen(
        [
            kubectl_bin(),
            f"--kubeconfig={kubeconfig}",
            "-n",
            OPERATOR_NAMESPACE,
            "port-forward",
            f"deployment/{SERVICE_ACCOUNT}",
            *(f"{free_port()}:{p}" for p in ports),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    local: list[int] = []
    assert proc.stdout is not None
    while len(local) < len(ports):
        line = proc.stdout.readline()
        if not line:
            raise AssertionError("kubectl port-forward exited")
        match = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) ->", line)
        if match:
            local.append(int(match.group(1)))
    return proc, local


def _kind_installation(kubectl: Kubectl) -> Iterator[Installation]:
    kubectl(
        "-n",
        OPERATOR_NAMESPACE,
        "rollout",
        "status",
        f"deployment/{SERVICE_ACCOUNT}",
        "--timeout=180s",
    )
    push = os.environ["AIMCTRL_E2E_REGISTRY_PUSH"]
    push_auth = os.environ["AIMCTRL_E2E_REGISTRY_AUTH_PUSH"]
    in_cluster = os.environ["AIMCTRL_E2E_REGISTRY"]
    in_cluster_auth = os.environ["AIMCTRL_E2E_REGISTRY_AUTH"]
    user = os.environ["AIMCTRL_E2E_REGISTRY_USER"]
    password = os.environ["AIMCTRL_E2E_REGISTRY_PASSWORD"]
    pushed = push_samples(push, push_auth, user, password)
    refs = {
        name: ref.replace(push_auth, in_cluster_auth).replace(push, in_cluster)
        for name, ref in pushed.items()
    }
    forward, (metrics, probes) = _port_forward(kubectl.kubeconfig, 8080, 8081)

    def logs() -> str:
        return kubectl.run(
            "-n", OPERATOR_NAMESPACE, "logs", f"deployment/{SERVICE_ACCOUNT}", check=False
        ).stdout

    def stop() -> None:
        kubectl.run(
            "-n", OPERATOR_NAMESPACE, "scale", f"deployment/{SERVICE_ACCOUNT}", "--replicas=0"
        )

    try:
        yield Installation(
            mode="kind",
            kubectl=kubectl,
            metrics_url=f"http://127.0.0.1:{metrics}/metrics",
            probe_url=f"http://127.0.0.1:{probes}",
            registry=Registry(
                refs=refs, auth_registry=in_cluster_auth, user=user, password=password
            ),
            manager_log=logs,
            stop_manager=stop,
        )
    finally:
        forward.terminate()
        forward.wait(timeout=10)


# ------------------------------------------------------------------------- failure dumps


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_FAILED] = report.failed


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(autouse=True)
def dump_cluster_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not request.node.stash.get(_FAILED, False):
        return
    if "installation" not in request.fixturenames:
        return
    inst: Installation = request.getfixturevalue("installation")
    k = inst.kubectl
    print("\n===== manager log (tail) =====\n" + inst.manager_log()[-6000:])
    events = k.run("get", "events", "-A", "--sort-by=.lastTimestamp", check=False).stdout
    print("===== events =====\n" + events[-6000:])
    print("===== kubectl describe aim -A =====")
    print(k.run("describe", "aim", "-A", check=False).stdout[-10000:])
