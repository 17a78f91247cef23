"""``hack/dev-cluster up|down``: the README's dev cluster starts whole and stops without leftovers.

Runs the real script (in a temporary ``$AIMCTRL_DEV_DIR``, so a developer's own ``.dev`` cluster
is never touched): after ``up`` both KWOK nodes are Ready, the registries answer with the
credentials in ``registry.env``, and the recorded pod runner is alive; after ``down`` no recorded
pid is alive and none of the recorded ports is listening.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aimctrl.testing.controlplane import kubectl_bin, repo_root
from aimctrl.testing.fleet import TEST_FLEET
from aimctrl.testing.helpers import eventually

pytestmark = pytest.mark.integration

SCRIPT = repo_root() / "hack" / "dev-cluster"


def _run(dev_dir: Path, command: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIMCTRL_DEV_DIR": str(dev_dir)}
    return subprocess.run(
        [str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=180, check=False
    )


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.split(") ", 1)[1][:1] != "Z"


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _recorded(state: dict[str, Any]) -> tuple[list[int], list[int]]:
    cp = state["controlplane"]
    pids = [*cp["pids"].values(), *state["registry"]["pids"], state["podrunner_pid"]]
    ports = [p for name, p in cp["ports"].items() if name != "startup_ms"]
    ports += [int(a.rsplit(":", 1)[1]) for a in (state["registry"]["registry"],)]
    ports += [int(state["registry"]["registry_auth"].rsplit(":", 1)[1])]
    return [int(p) for p in pids], [int(p) for p in ports]


@pytest.fixture
def dev_cluster(tmp_path: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    dev_dir = tmp_path / "dev"
    result = _run(dev_dir, "up")
    assert result.returncode == 0, result.stdout + result.stderr
    state = json.loads((dev_dir / "state.json").read_text())
    try:
        yield dev_dir, state
    finally:
        _run(dev_dir, "down")


def test_up_gives_the_ready_gpu_fleet_registries_and_a_pod_runner_and_down_leaves_nothing(
    dev_cluster: tuple[Path, dict[str, Any]],
) -> None:
    dev_dir, state = dev_cluster
    kubeconfig = dev_dir / "kubeconfig"
    assert kubeconfig.stat().st_mode & 0o077 == 0, "the admin kubeconfig must be private"

    def nodes_ready() -> bool:
        out = subprocess.run(
            [kubectl_bin(), "--kubeconfig", str(kubeconfig), "get", "nodes", "-o", "json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        nodes = json.loads(out)["items"]
        ready = [
            n["metadata"]["name"]
            for n in nodes
            if any(
                c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]
            )
        ]
        return sorted(ready) == sorted(name for name, *_ in TEST_FLEET)

    eventually(nodes_ready, timeout=30, what="every node of the KWOK fleet Ready")

    env_file = dev_dir / "registry.env"
    assert env_file.stat().st_mode & 0o077 == 0, "registry.env holds a password"
    env = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert set(env) == {"REGISTRY", "REGISTRY_AUTH", "REGISTRY_USER", "REGISTRY_PASSWORD"}
    env = {k: shlex.split(v)[0] for k, v in env.items()}
    assert httpx.get(f"http://{env['REGISTRY']}/v2/", timeout=5).status_code == 200
    auth_base = f"http://{env['REGISTRY_AUTH']}/v2/"
    assert httpx.get(auth_base, timeout=5).status_code == 401
    creds = (env["REGISTRY_USER"], env["REGISTRY_PASSWORD"])
    assert httpx.get(auth_base, auth=creds, timeout=5).status_code == 200
    good = state["samples"]["good"]
    repo, tag = good.split("/", 1)[1].rsplit(":", 1)
    manifest = httpx.get(
        f"http://{env['REGISTRY']}/v2/{repo}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=5,
    )
    assert manifest.status_code == 200, "the sample images are pushed"

    pids, ports = _recorded(state)
    assert all(_alive(p) for p in pids), pids
    assert _run(dev_dir, "status").returncode == 0

    # up again is idempotent: same cluster, nothing restarted.
    again = _run(dev_dir, "up")
    assert again.returncode == 0
    assert (
        json.loads((dev_dir / "state.json").read_text())["controlplane"]["pids"]
        == state["controlplane"]["pids"]
    )

    down = _run(dev_dir, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert [p for p in pids if _alive(p)] == []
    assert [p for p in ports if _listening(p)] == []
    assert not (dev_dir / "state.json").exists()
    assert not env_file.exists()
    assert _run(dev_dir, "status").returncode == 1
