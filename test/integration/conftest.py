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
