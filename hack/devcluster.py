"""hack/dev-cluster up|down|status: the local development cluster.

``up`` starts, all on 127.0.0.1, the real control plane of :mod:`aimctrl.testing.controlplane`
(etcd, kube-apiserver, kube-controller-manager, kube-scheduler, KWOK with two fake nodes, one of
them an AMD MI300X GPU node), two Debian ``docker-registry`` instances (open and basic auth) with
the documented sample images pushed, and the harness's discovery-pod runner
(:mod:`aimctrl.testing.podrunner`: it stands in for the kubelet for discovery pods only, since
nothing here runs containers). It writes:

* ``.dev/kubeconfig``   — the admin kubeconfig;
* ``.dev/registry.env`` — ``REGISTRY``, ``REGISTRY_AUTH``, ``REGISTRY_USER``, ``REGISTRY_PASSWORD``
  (mode 0600: it holds a password);
* ``.dev/state.json``   — the pids and ports ``down`` and ``status`` use (mode 0600);
* ``.dev/podrunner/``   — one log file per discovery pod the runner executed (what
  ``kubectl logs`` would show on a real cluster).

The directory is ``.dev`` in the checkout, or ``$AIMCTRL_DEV_DIR`` (tests use a temporary one).
``up`` is idempotent: when the recorded cluster is healthy it only prints how to use it.
``down`` stops every process ``up`` started (and the manager ``hack/run-local.sh`` started, if its
pid file is there) and leaves nothing listening; a pid is signalled only while its command line is
still one of ours.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from aimctrl.testing.controlplane import ControlPlane, repo_root, stop_pids
from aimctrl.testing.images import push_samples
from aimctrl.testing.registry import LocalRegistries, RegistryEnv, stop_registries

DEV = Path(os.environ.get("AIMCTRL_DEV_DIR") or repo_root() / ".dev")
STATE = DEV / "state.json"
KUBECONFIG = DEV / "kubeconfig"
REGISTRY_ENV = DEV / "registry.env"
PODRUNNER_LOGS = DEV / "podrunner"
MANAGER_PID = DEV / "manager.pid"  # written by hack/run-local.sh


def _load_state() -> dict[str, Any] | None:
    if not STATE.exists():
        return None
    try:
        return dict(json.loads(STATE.read_text()))
    except ValueError:
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.split(") ", 1)[1][:1] != "Z"


def _healthy(state: dict[str, Any]) -> bool:
    cp = state["controlplane"]
    pki = Path(cp["directory"]) / "pki"
    runner = int(state.get("podrunner_pid", 0))
    if not runner or not _pid_alive(runner):
        return False
    try:
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        r = httpx.get(f"{cp['server']}/readyz", verify=ctx, timeout=3)
        if r.status_code != 200:
            return False
        registry = RegistryEnv.from_json(json.dumps(state["registry"]))
        for addr in (registry.registry, registry.registry_auth):
            if httpx.get(f"http://{addr}/v2/", timeout=3).status_code not in (200, 401):
                return False
    except (httpx.HTTPError, OSError, ssl.SSLError):
        return False
    return True


def _usage(state: dict[str, Any]) -> str:
    reg = state["registry"]
    return (
        f"dev cluster is up (apiserver {state['controlplane']['server']})\n"
        f"  export KUBECONFIG={KUBECONFIG}\n"
        f"  kubectl get nodes\n"
        f"  registries: open {reg['registry']}, basic auth {reg['registry_auth']} "
        f"(user {reg['user']}; see {REGISTRY_ENV})\n"
        f"  discovery pod logs: {PODRUNNER_LOGS}/<namespace>_<pod>.log\n"
        f"  stop with: hack/dev-cluster down"
    )


def _write_private(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


def _env_file(env: RegistryEnv) -> str:
    """The documented keys only, shell-quoted, so ``. .dev/registry.env`` works."""
    keys = ("REGISTRY", "REGISTRY_AUTH", "REGISTRY_USER", "REGISTRY_PASSWORD")
    values = env.to_env()
    return "".join(f"{k}={shlex.quote(values[k])}\n" for k in keys)


def _start_podrunner(kubeconfig: Path) -> int:
    """The discovery-pod runner as its own process (own session, so ``down`` can stop it)."""
    PODRUNNER_LOGS.mkdir(parents=True, exist_ok=True)
    log = (DEV / "podrunner.log").open("ab")
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aimctrl.testing.podrunner",
                str(kubeconfig),
                str(PODRUNNER_LOGS),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        log.close()
    return proc.pid


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
    # The directory's name also names etcd's tmpfs data dir: unique per DEV, so a test's dev
    # cluster and a developer's never share one.
    cp_dir = DEV / f"controlplane-{hashlib.sha256(str(DEV).encode()).hexdigest()[:8]}"
    shutil.rmtree(cp_dir, ignore_errors=True)
    reg_dir = DEV / "registries"
    shutil.rmtree(reg_dir, ignore_errors=True)
    cp = ControlPlane(directory=cp_dir)
    registries = LocalRegistries(reg_dir, token=False)
    runner_pid = 0
    try:
        cp.start()
        env = registries.start()
        pushed = push_samples(env.registry, env.registry_auth, env.user, env.password)
        shutil.copy(cp.kubeconfig, KUBECONFIG)
        KUBECONFIG.chmod(0o600)
        runner_pid = _start_podrunner(KUBECONFIG)
    except BaseException:
        if runner_pid:
            stop_pids([runner_pid])
        registries.stop()
        cp.stop()
        raise
    _write_private(REGISTRY_ENV, _env_file(env))
    state = {
        "controlplane": cp.state(),
        "registry": json.loads(env.to_json()),
        "podrunner_pid": runner_pid,
        "samples": pushed,
        "startup_seconds": round(time.monotonic() - t0, 1),
    }
    _write_private(STATE, json.dumps(state, indent=2))
    print(_usage(state))
    print(f"  started in {state['startup_seconds']} s; sample images: {len(pushed)}")
    return 0


def _stop_manager() -> int:
    """Stop the manager hack/run-local.sh left running, if its pid is still an aimctrl process."""
    if not MANAGER_PID.exists():
        return 0
    stopped = 0
    with contextlib.suppress(ValueError, OSError):
        pid = int(MANAGER_PID.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"aimctrl" in cmdline:
            os.kill(pid, signal.SIGTERM)
            stopped = 1
            deadline = time.monotonic() + 10
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
    MANAGER_PID.unlink(missing_ok=True)
    return stopped


def _wait_gone(pids: list[int], timeout: float = 10.0) -> None:
    """Return once no pid is alive (a SIGKILLed process still needs a moment to be reaped)."""
    deadline = time.monotonic() + timeout
    while any(p and _pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


def down() -> int:
    state = _load_state()
    stopped = _stop_manager()
    if state is None:
        print(f"dev-cluster: nothing recorded; stopped {stopped} processes")
        return 0
    runner = int(state.get("podrunner_pid", 0))
    if runner:
        stop_pids([runner])
        stopped += 1
    registry_pids: list[int] = []
    if state.get("registry"):
        registry_env = RegistryEnv.from_json(json.dumps(state["registry"]))
        registry_pids = list(registry_env.pids)
        stopped += len(stop_registries(registry_env))
    # Clients of the apiserver first, then the apiserver, then etcd: stopped all at once, the
    # apiserver waits for its etcd connection and needs the SIGKILL after the grace period.
    cp = {name: int(pid) for name, pid in state["controlplane"]["pids"].items()}
    first = [pid for name, pid in cp.items() if name not in ("kube-apiserver", "etcd")]
    for group in (first, [cp.get("kube-apiserver", 0)], [cp.get("etcd", 0)]):
        stop_pids([pid for pid in group if pid])
    stopped += len(cp)
    _wait_gone([runner, *registry_pids, *cp.values()])
    shutil.rmtree(state["controlplane"].get("etcd_data_dir", ""), ignore_errors=True)
    for path in (STATE, KUBECONFIG, REGISTRY_ENV):
        path.unlink(missing_ok=True)
    print(f"dev-cluster: stopped {stopped} processes")
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
