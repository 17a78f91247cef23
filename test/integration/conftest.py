"""Shared integration fixtures: real registries on 127.0.0.1 seeded with the sample images."""

import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from aimctrl.testing.images import push_samples
from aimctrl.testing.registry import LocalRegistries, RegistryEnv


@dataclass(frozen=True)
class SampleRegistries:
    """The running registries and ``sample name → image reference`` (see testing/images.py)."""

    env: RegistryEnv
    refs: dict[str, str]


@pytest.fixture(scope="session")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampleRegistries]:
    """Open, Basic and token registries (plus token server), started once per session."""
    if shutil.which("docker-registry") is None or shutil.which("htpasswd") is None:
        pytest.skip("docker-registry and htpasswd (apache2-utils) are needed")
    harness = LocalRegistries(tmp_path_factory.mktemp("registries"), token=True)
    env = harness.start()
    try:
        refs = push_samples(
            env.registry,
            env.registry_auth,
            env.user,
            env.password,
            token_registry_addr=env.registry_token,
        )
        yield SampleRegistries(env=env, refs=refs)
    finally:
        harness.stop()


# --------------------------------------------------------------------------- the manager
from collections.abc import Callable  # noqa: E402

from aimctrl.controllers.context import DiscoveryMode, Settings  # noqa: E402
from aimctrl.manager import Manager, ManagerOptions  # noqa: E402
from aimctrl.testing.podrunner import DiscoveryPodRunner  # noqa: E402

OPERATOR_NAMESPACE = "aimctrl-system"


@pytest.fixture(scope="session")
def operator_namespace(kubectl) -> str:  # type: ignore[no-untyped-def]
    """The operator namespace: cluster models' discovery Jobs and their pull secrets live here."""
    kubectl.run("create", "namespace", OPERATOR_NAMESPACE, check=False)
    return OPERATOR_NAMESPACE


@pytest.fixture(scope="session")
def pod_runner(
    kubeconfig_path: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DiscoveryPodRunner]:
    """The harness's kubelet for discovery pods (see aimctrl.testing.podrunner)."""
    runner = DiscoveryPodRunner(kubeconfig_path, log_dir=tmp_path_factory.mktemp("podrunner"))
    runner.start()
    yield runner
    runner.stop()


@pytest.fixture
def start_manager(
    kubeconfig_path: str, crds_installed: None, operator_namespace: str
) -> Iterator[Callable[..., Manager]]:
    """Start an in-process manager: ``start_manager(only=("model",), discovery_mode="inline")``.

    Each test gets its own manager (own informers, queues and threads), shut down afterwards.
    """
    started: list[Manager] = []

    def start(
        *,
        only: tuple[str, ...] = (),
        discovery_mode: str = "inline",
        workers: int = 2,
        leader_elect: bool = False,
    ) -> Manager:
        settings = Settings(
            operator_namespace=operator_namespace,
            discovery_mode=DiscoveryMode(discovery_mode),
            discovery_image="aimctrl:dev",
            workers=workers,
            discovery_active_deadline_seconds=120,
        )
        manager = Manager(
            ManagerOptions(
                kubeconfig=kubeconfig_path,
                metrics_bind_address="127.0.0.1:0",
                health_probe_bind_address="127.0.0.1:0",
                leader_elect=leader_elect,
                settings=settings,
                only=only,
            )
        )
        manager.start()
        started.append(manager)
        return manager

    yield start
    for manager in started:
        manager.shutdown()
