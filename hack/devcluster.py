"""hack/dev-cluster up|down|status: the local development cluster.

``up`` starts, all on 127.0.0.1, the real control plane of :mod:`aimctrl.testing.controlplane`
(etcd, kube-apiserver, kube-controller-manager, kube-scheduler, KWOK with two fake nodes, one of
them an AMD MI300X GPU node) and two Debian ``docker-registry`` instances (open and basic auth),
pushes the documented sample images, and writes:

* ``.dev/kubeconfig``   — the admin kubeconfig;
* ``.dev/registry.env`` — ``REGISTRY``, ``REGISTRY_AUTH``, ``REGISTRY_USER``, ``REGISTRY_PASSWORD``;
* ``.dev/state.json``   — the pids and ports ``down`` and ``status`` use.

``up`` is idempotent: when the recorded cluster is healthy it only prints how to use it.
``down`` stops every process ``up`` started and leaves nothing listening.
"""

from __future__ import annotations

import argparse
import json
import shutil
import ssl
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from aimctrl.testing.controlplane import ControlPlane, repo_root, stop_pids
from aimctrl.testing.registry import RegistrySet

DEV = repo_root() / ".dev"
STATE = DEV / "state.json"


def _load_state() -> dict[str, Any] | None:
    if not STATE.exists():
        return None
    try:
        return dict(json.loads(STATE.read_text()))
    except ValueError:
        return None


def _healthy(state: dict[str, Any]) -> bool:
    cp = state["controlplane"]
    pki = Path(cp["directory"]) / "pki"
    try:
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        r = httpx.get(f"{cp['server']}/readyz", verify=ctx, timeout=3)
        if r.status_code != 200:
            return False
        for addr in (state["registry"]["REGISTRY"], state["registry"]["REGISTRY_AUTH"]):
            if httpx.get(f"http://{addr}/v2/", timeout=3).status_code not in (200, 401):
                return False
    except httpx.HTTPError:
        return False
    return True


def _usage(state: dict[str, Any]) -> str:
    reg = state["registry"]
    return (
        f"dev cluster is up (apiserver {state['controlplane']['server']})\n"
        f"  export KUBECONFIG={DEV / 'kubeconfig'}\n"
        f"  kubectl get nodes\n"
        f"  registries: open {reg['REGISTRY']}, basic auth {reg['REGISTRY_AUTH']} "
        f"(user {reg['REGISTRY_USER']}; see {DEV / 'registry.env'})\n"
        f"  stop with: hack/dev-cluster down"
    )


def up() -> int:
    state = _load_state()
    if state is not None and _healthy(state):
        print(_usage(state))
        return 0
    if state is not None:
        print("dev-cluster: recorded cluster is not healthy; restarting it", file=sys.stderr)
        down()
    DEV.mkdir(exist_ok=True)
    t0 = time.monotonic()
    cp_dir = DEV / "controlplane"
    shutil.rmtree(cp_dir, ignore_errors=True)
    cp = ControlPlane(directory=cp_dir)
    registries = RegistrySet(directory=DEV / "registries")
    try:
        cp.start()
        registries.start()
        pushed = registries.push_samples()
    except BaseException:
        cp.stop()
        registries.stop()
        raise
    shutil.copy(cp.kubeconfig, DEV / "kubeconfig")
    (DEV / "kubeconfig").chmod(0o600)
    env = registries.env()
    (DEV / "registry.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    state = {
        "controlplane": cp.state(),
        "registry": env,
        "registry_pids": registries.pids(),
        "samples": pushed,
        "startup_seconds": round(time.monotonic() - t0, 1),
    }
    STATE.write_text(json.dumps(state, indent=2))
    print(_usage(state))
    print(f"  started in {state['startup_seconds']} s; sample images: {len(pushed)}")
    return 0


def down() -> int:
    state = _load_state()
    if state is None:
        print("dev-cluster: nothing recorded; nothing to stop")
        return 0
    pids = list(state.get("registry_pids", []))
    pids += list(reversed(list(state["controlplane"]["pids"].values())))
    stop_pids([int(p) for p in pids])
    shutil.rmtree(state["controlplane"].get("etcd_data_dir", ""), ignore_errors=True)
    STATE.unlink(missing_ok=True)
    (DEV / "kubeconfig").unlink(missing_ok=True)
    (DEV / "registry.env").unlink(missing_ok=True)
    print(f"dev-cluster: stopped {len(pids)} processes")
    return 0


def status() -> int:
    state = _load_state()
    if state is None:
        print("dev-cluster: down")
        return 1
    if not _healthy(state):
        print("dev-cluster: recorded but not healthy (run 'hack/dev-cluster up')")
        return 1
    print(_usage(state))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/dev-cluster", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    return {"up": up, "down": down, "status": status}[args.command]()


if __name__ == "__main__":
    sys.exit(main())
