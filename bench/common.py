"""Shared harness of the scale benchmarks: a cluster, registries, the manager in a subprocess,
apiserver write counters, a counting registry proxy, and table printing.

Guarantees:

* :func:`cluster` starts etcd + kube-apiserver (``ControlPlane(with_controllers=False)``) when no
  kubeconfig is given, installs the CRDs either way, and stops what it started;
* :class:`ApiMetrics` reads ``apiserver_request_total`` from the apiserver's ``/metrics`` with the
  kubeconfig's own client certificate (the admin one for a plane started here), so write counts
  are the server's, not the client's, view;
* :class:`ManagerProcess` runs ``python -m aimctrl run`` as a child process (its own process
  group), so RSS and CPU time come from ``/proc/<pid>`` and belong to the manager alone;
* :class:`CountingProxy` forwards every request to a registry and counts them by method and kind
  (``manifests``, ``blobs``, other);
* nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from aimctrl.api.v1alpha1.common import API_VERSION
from aimctrl.api.v1alpha1.model import AIMClusterModel
from aimctrl.api.v1alpha1.template import AIMClusterServiceTemplate
from aimctrl.kube.client import KubeClient
from aimctrl.kube.errors import AlreadyExists, KubeError
from aimctrl.kube.resources import NAMESPACE, Resource
from aimctrl.log import configure_logging
from aimctrl.machinery.informer import SharedInformer
from aimctrl.testing.controlplane import free_port, kubectl_bin, repo_root
from aimctrl.testing.images import build_image, push_image, sample_images

MODELS = Resource(*AIMClusterModel.RESOURCE.resource)
TEMPLATES = Resource(*AIMClusterServiceTemplate.RESOURCE.resource)
OPERATOR_NAMESPACE = "aimctrl-system"
BENCH_LABEL = "aimctrl-bench"
MUTATING = ("POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION")
CLK_TCK = os.sysconf("SC_CLK_TCK")
_NOT_OURS = frozenset({"leases", "endpoints", "endpointslices"})

configure_logging(format="console", level="warning")  # the driver's own informers stay quiet
# SIGTERM unwinds like Ctrl-C, so the control plane, registries and manager started are stopped.
signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))


# -- process numbers ------------------------------------------------------------------------------


def rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int | str = "self") -> float:
    """utime + stime of the process (all its threads), in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# -- the cluster ----------------------------------------------------------------------------------


@dataclass
class Cluster:
    kubeconfig: str
    client: KubeClient
    metrics: ApiMetrics
    workdir: Path
    plane_pids: dict[str, int] = field(default_factory=dict)  # empty with --kubeconfig

    def plane_cpu(self) -> dict[str, float]:
        """CPU seconds used so far by the benchmark's own kube-apiserver and etcd."""
        return {name: cpu_seconds(pid) for name, pid in self.plane_pids.items()}


@contextlib.contextmanager
def cluster(kubeconfig: str | None, *, with_controllers: bool = False) -> Iterator[Cluster]:
    """A cluster with the CRDs installed: the given one, or a fresh apiserver + etcd."""
    with contextlib.ExitStack() as stack:
        pids: dict[str, int] = {}
        if not kubeconfig:
            from aimctrl.testing.controlplane import ControlPlane

            plane = stack.enter_context(ControlPlane(with_controllers=with_controllers))
            kubeconfig = str(plane.kubeconfig)
            pids = {name: p.popen.pid for name, p in plane.procs.items()}
            print(f"control plane up: {plane.server} ({plane.ports['startup_ms']} ms)", flush=True)
        install_crds(kubeconfig)
        client = KubeClient.from_kubeconfig(kubeconfig)
        _wait_listable(client)
        with contextlib.suppress(AlreadyExists):
            client.create(NAMESPACE, {"metadata": {"name": OPERATOR_NAMESPACE}})
        workdir = Path(tempfile.mkdtemp(prefix="aimctrl-bench-"))
        yield Cluster(kubeconfig, client, ApiMetrics.from_kubeconfig(kubeconfig), workdir, pids)


def _wait_listable(client: KubeClient, timeout: float = 60) -> None:
    """New CRDs answer 429 "storage is (re)initializing" for a moment after Established."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            for resource in (MODELS, TEMPLATES):
                client.list_page(resource, limit=1)
            return
        except KubeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def kubectl(kubeconfig: str, *args: str) -> str:
    out = subprocess.run(
        [kubectl_bin(), "--kubeconfig", kubeconfig, *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout


def install_crds(kubeconfig: str) -> None:
    crds = repo_root() / "config" / "crd" / "bases"
    kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(crds))
    kubectl(kubeconfig, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")


class ApiMetrics:
    """``apiserver_request_total`` from the apiserver, by (verb, resource[/subresource])."""

    _LINE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
    _LABEL = re.compile(r'(\w+)="([^"]*)"')

    def __init__(self, server: str, ssl_context: ssl.SSLContext, headers: Mapping[str, str]):
        self._client = httpx.Client(
            base_url=server, verify=ssl_context, headers=dict(headers), timeout=30
        )

    @classmethod
    def from_kubeconfig(cls, path: str) -> ApiMetrics:
        cfg = yaml.safe_load(Path(path).read_text())
        ctx_name = cfg.get("current-context")
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        clus = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
        tmp = Path(tempfile.mkdtemp(prefix="aimctrl-bench-pki-"))

        def material(key: str) -> str | None:
            if user.get(key) or clus.get(key):
                return str(user.get(key) or clus.get(key))
            data = user.get(f"{key}-data") or clus.get(f"{key}-data")
            if not data:
                return None
            out = tmp / key
            out.write_bytes(base64.b64decode(data))
            out.chmod(0o600)
            return str(out)

        ca = material("certificate-authority")
        context = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
        cert, key = material("client-certificate"), material("client-key")
        if cert and key:
            context.load_cert_chain(cert, key)
        headers = {"Authorization": f"Bearer {user['token']}"} if user.get("token") else {}
        return cls(clus["server"], context, headers)

    def requests(self) -> Counter[tuple[str, str]]:
        text = self._client.get("/metrics").text
        counts: Counter[tuple[str, str]] = Counter()
        for line in text.splitlines():
            m = self._LINE.match(line)
            if not m:
                continue
            labels = dict(self._LABEL.findall(m.group("labels")))
            resource = labels.get("resource", "")
            if labels.get("subresource"):
                resource += "/" + labels["subresource"]
            counts[(labels.get("verb", ""), resource)] += int(float(m.group("value")))
        return counts

    @staticmethod
    def writes(
        before: Counter[tuple[str, str]], after: Counter[tuple[str, str]]
    ) -> Counter[tuple[str, str]]:
        """Mutating requests made between two snapshots, less the apiserver's own (leases, the
        ``kubernetes`` service's endpoints)."""
        diff: Counter[tuple[str, str]] = Counter()
        for key, value in after.items():
            verb, resource = key
            if verb in MUTATING and resource not in _NOT_OURS and value > before.get(key, 0):
                diff[key] = value - before.get(key, 0)
        return diff


def summarise_writes(writes: Counter[tuple[str, str]]) -> str:
    by_resource: Counter[str] = Counter()
    for (verb, resource), n in writes.items():
        by_resource[f"{verb} {resource}"] += n
    return ", ".join(f"{k}={v}" for k, v in sorted(by_resource.items()))


# -- registries and images ------------------------------------------------------------------------


@dataclass
class Images:
    registry: str  # host:port the images are referenced through (proxy or registry)
    refs: list[str]
    deployments: int
    proxy: CountingProxy | None = None


def bench_labels(index: int) -> dict[str, str]:
    """The documented 'good' sample's labels (4 recommended deployments), made distinct."""
    good = next(s for s in sample_images() if s.name == "good")
    labels = dict(good.labels)
    for key in list(labels):
        if key.endswith("model.canonicalName"):
            labels[key] = f"bench/model-{index:02d}"
        if key.endswith("model.source"):
            labels[key] = f"hf://bench/model-{index:02d}"
    return labels


def push_bench_images(registry_addr: str, count: int) -> list[str]:
    refs = []
    with httpx.Client(timeout=30.0) as client:
        for i in range(count):
            repo, tag = f"bench/model-{i:02d}", "1.0.0"
            push_image(client, f"http://{registry_addr}", repo, tag, build_image(bench_labels(i)))
            refs.append(f"{registry_addr}/{repo}:{tag}")
    return refs


@contextlib.contextmanager
def registry_with_images(count: int, *, counting: bool = False) -> Iterator[Images]:
    """An open registry (``docker-registry``) holding ``count`` images, optionally behind a
    :class:`CountingProxy` (then the refs name the proxy)."""
    from aimctrl.testing.registry import LocalRegistries

    with LocalRegistries(token=False) as env:
        push_bench_images(env.registry, count)
        if not counting:
            refs = [f"{env.registry}/bench/model-{i:02d}:1.0.0" for i in range(count)]
            yield Images(env.registry, refs, 4)
            return
        with CountingProxy(env.registry) as proxy:
            refs = [f"{proxy.addr}/bench/model-{i:02d}:1.0.0" for i in range(count)]
            yield Images(proxy.addr, refs, 4, proxy)


class CountingProxy:
    """HTTP proxy on 127.0.0.1 in front of one registry; counts requests by (method, kind)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in two writes: without this, Nagle + delayed ACK add ~40 ms.
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                kind = "other"
                for k in ("manifests", "blobs"):
                    if f"/{k}/" in self.path:
                        kind = k
                with proxy._lock:
                    proxy.counts[(self.command, kind)] += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")
                }
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() in ("content-length", "connection", "transfer-encoding"):
                        continue
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_POST = do_PUT = _forward  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.addr = f"127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> CountingProxy:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def snapshot(self) -> Counter[tuple[str, str]]:
        with self._lock:
            return Counter(self.counts)

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()


# -- objects --------------------------------------------------------------------------------------


def model_name(prefix: str, i: int) -> str:
    return f"{prefix}-{i:05d}"


def model_body(name: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": MODELS.kind,
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": BENCH_LABEL}},
        "spec": {"image": image, "discovery": {"enabled": True, "autoCreateTemplates": True}},
    }


def parallel(fn: Callable[[int], object], n: int, *, threads: int) -> float:
    """Run ``fn(0..n-1)`` on ``threads`` threads; return the elapsed seconds. Errors propagate."""
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(fn, range(n)):
            pass
    return time.perf_counter() - start


class Watcher:
    """Informers over cluster models and cluster templates in the driver process, to tell
    convergence without polling lists."""

    def __init__(self, client: KubeClient) -> None:
        self.stop = threading.Event()
        self.models = SharedInformer(client.list_watcher(MODELS), name="bench-models")
        self.templates = SharedInformer(client.list_watcher(TEMPLATES), name="bench-templates")
        for inf in (self.models, self.templates):
            inf.start(self.stop)

    def wait_synced(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not (self.models.has_synced() and self.templates.has_synced()):
            if time.monotonic() > deadline:
                raise TimeoutError("bench informers did not sync")
            time.sleep(0.05)

    def counts(self, prefix: str) -> tuple[int, int, int, int]:
        """(models, models Ready, templates, templates Ready) among names starting ``prefix``."""
        models = [o for o in self.models.indexer.list() if _named(o, prefix)]
        templates = [o for o in self.templates.indexer.list() if _named(o, prefix)]
        return (
            len(models),
            sum(1 for o in models if _ready(o)),
            len(templates),
            sum(1 for o in templates if _ready(o)),
        )

    def wait_converged(
        self, prefix: str, n: int, per_model: int, *, timeout: float, every: float = 0.2
    ) -> float:
        """Block until ``n`` models and ``n * per_model`` templates are Ready; return monotonic
        time of the first observation."""
        deadline = time.monotonic() + timeout
        last_print = 0.0
        while True:
            c = self.counts(prefix)
            now = time.monotonic()
            if c[1] >= n and c[3] >= n * per_model:
                return now
            if now > deadline:
                raise TimeoutError(f"not converged: models {c[0]}/{c[1]} templates {c[2]}/{c[3]}")
            if now - last_print > 10:
                print(
                    f"  ... models {c[0]} (Ready {c[1]}), templates {c[2]} (Ready {c[3]})",
                    flush=True,
                )
                last_print = now
            time.sleep(every)

    def close(self) -> None:
        self.stop.set()


def _named(obj: Mapping[str, Any], prefix: str) -> bool:
    return str(obj["metadata"]["name"]).startswith(prefix)


def _ready(obj: Mapping[str, Any]) -> bool:
    return (obj.get("status") or {}).get("status") == "Ready"


# -- the manager in a subprocess ------------------------------------------------------------------


@dataclass
class ManagerProcess:
    """``python -m aimctrl run`` against ``kubeconfig`` with inline discovery."""

    kubeconfig: str
    workdir: Path
    workers: int = 2
    extra: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    metrics_port: int = 0
    probe_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / "manager.log"

    def start(self) -> ManagerProcess:
        self.metrics_port, self.probe_port = free_port(), free_port()
        argv = [
            sys.executable,
            "-m",
            "aimctrl",
            "run",
            "--kubeconfig",
            self.kubeconfig,
            "--discovery-mode=inline",
            f"--metrics-bind-address=127.0.0.1:{self.metrics_port}",
            f"--health-probe-bind-address=127.0.0.1:{self.probe_port}",
            f"--operator-namespace={OPERATOR_NAMESPACE}",
            f"--workers={self.workers}",
            *self.extra,
        ]
        log = self.log_path.open("ab")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **self.env},
        )
        log.close()
        return self

    def __enter__(self) -> ManagerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"manager exited with {self.proc.returncode}:\n{tail}")

    def ready(self) -> bool:
        try:
            r = httpx.get(f"http://127.0.0.1:{self.probe_port}/readyz", timeout=2)
        except httpx.TransportError:
            return False
        return r.status_code == 200

    def wait_ready(self, timeout: float = 600, every: float = 0.02) -> float:
        """Seconds from process start until ``/readyz`` answers 200."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            self.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError("manager not ready")
            time.sleep(every)
        return time.monotonic() - self.started_at

    def metrics(self) -> dict[str, float]:
        """The manager's Prometheus samples, ``name{labels}`` → value."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
        out: dict[str, float] = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[key] = float(value)
        return out

    def sum_metric(self, name: str, samples: Mapping[str, float] | None = None) -> float:
        samples = samples if samples is not None else self.metrics()
        return sum(v for k, v in samples.items() if k == name or k.startswith(name + "{"))

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.pid)


# -- output ---------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        )
    ]
    lines.append("  ".join("-" * w for w in widths))
    for r in cells:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def mib(n: float) -> float:
    return n / (1024 * 1024)


def dump_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, default=str))


# -- converged shapes (what aimctrl writes), replicated under other names ------------------------


@dataclass
class Shape:
    """One model and its templates exactly as aimctrl converged them."""

    model: dict[str, Any]
    templates: list[dict[str, Any]]

    @property
    def name(self) -> str:
        return str(self.model["metadata"]["name"])

    @property
    def json_bytes(self) -> int:
        """Size of the model and its templates as the apiserver returns them."""
        return len(json.dumps(self.model)) + sum(len(json.dumps(t)) for t in self.templates)


_SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields")


def capture_shapes(
    c: Cluster, images: Sequence[str], *, prefix: str = "shape", timeout: float = 120
) -> list[Shape]:
    """Converge one model per image with a real manager run; return what it wrote."""
    watcher = Watcher(c.client)
    try:
        watcher.wait_synced()
        with ManagerProcess(c.kubeconfig, c.workdir) as manager:
            manager.wait_ready()
            for i, image in enumerate(images):
                with contextlib.suppress(AlreadyExists):
                    c.client.create(MODELS, model_body(model_name(prefix, i), image))
            watcher.wait_converged(prefix, len(images), 4, timeout=timeout)
            time.sleep(1.0)  # let trailing status writes land before reading back
    finally:
        watcher.close()
    shapes = []
    for i in range(len(images)):
        name = model_name(prefix, i)
        model = c.client.get(MODELS, name)
        selector = f"aim.silogen.ai/model={name}"
        templates = c.client.list(TEMPLATES, label_selector=selector)["items"]
        shapes.append(Shape(model, sorted(templates, key=lambda t: t["metadata"]["name"])))
    return shapes


def replicate(shape: Shape, name: str, uid: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``shape``'s model status and its templates (with status) for a model ``name``/``uid``:
    template names, the model name and uid substituted everywhere (messages included)."""
    from aimctrl.resolve.templates import template_name

    model = AIMClusterModel.model_validate(shape.model)
    meta = model.status.image_metadata
    deployments = (meta.model.recommended_deployments if meta and meta.model else None) or []
    renames = [(template_name(shape.name, d), template_name(name, d)) for d in deployments]
    old_uid = str(shape.model["metadata"]["uid"])
    templates = []
    for t in shape.templates:
        t = {**t, "metadata": {k: v for k, v in t["metadata"].items() if k not in _SERVER_FIELDS}}
        templates.append(t)
    text = json.dumps({"status": shape.model.get("status") or {}, "templates": templates})
    for old, new in renames:
        text = text.replace(old, new)
    text = text.replace(shape.name, name).replace(old_uid, uid)
    data = json.loads(text)
    return data["status"], data["templates"]


SET_LABEL = "bench.aimctrl.dev/set"


def create_replica(
    client: KubeClient, shape: Shape, prefix: str, i: int
) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """Create model ``i`` of set ``prefix`` with ``shape``'s image; return its name, and the
    status and templates (with status) aimctrl would write for it (:func:`replicate`)."""
    name = model_name(prefix, i)
    body = model_body(name, shape.model["spec"]["image"])
    body["metadata"]["labels"][SET_LABEL] = prefix
    created = client.create(MODELS, body)
    status, templates = replicate(shape, name, created["metadata"]["uid"])
    return name, status, templates


def delete_all(c: Cluster, *, timeout: float = 300) -> None:
    """Delete every cluster model and cluster template (one DELETE collection each) and wait
    until both lists are empty — phases of a run must not see each other's objects."""
    for resource in (MODELS, TEMPLATES):
        resp = c.client.request("DELETE", resource.path())
        resp.read()
        resp.release_conn()
    deadline = time.monotonic() + timeout
    while True:
        left = sum(len(c.client.list(r)["items"]) for r in (MODELS, TEMPLATES))
        if left == 0:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{left} objects left after delete")
        time.sleep(0.5)


def start_profile(pid: int, out: Path, *, gil: bool = False) -> subprocess.Popen[bytes]:
    """``py-spy record`` (folded stacks, 100 Hz, all threads, idle frames dropped; with ``gil``
    only the thread holding the GIL: where the Python CPU goes, not where threads wait)."""
    spy = Path(sys.executable).parent / "py-spy"
    return subprocess.Popen(
        [
            str(spy),
            "record",
            "-p",
            str(pid),
            "-o",
            str(out),
            "--format",
            "raw",
            "-r",
            "100",
            "--nonblocking",
            *(["--gil"] if gil else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_profile(proc: subprocess.Popen[bytes], out: Path, top: int = 25) -> None:
    """Stop py-spy (SIGINT writes the file) and print the functions with most samples."""
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [
            f.split(" (")[0] + " " + f.rsplit("/", 1)[-1].rstrip(")") for f in stack.split(";")
        ]
        n = int(count)
        total += n
        leaf[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    print(f"\npy-spy: {total} samples ({out})")
    print(
        table(
            ["function (inclusive)", "%"],
            [[f, 100 * v / total] for f, v in inclusive.most_common(top)],
        )
    )
    print(table(["function (self)", "%"], [[f, 100 * v / total] for f, v in leaf.most_common(top)]))


def bench_parser(doc: str | None, *, models: int, cluster: bool = True) -> argparse.ArgumentParser:
    """The options the scale benchmarks share: ``--kubeconfig`` (with ``cluster``), ``--models``
    and ``--scale``; the description is the first paragraph of ``doc``."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    if cluster:
        parser.add_argument("--kubeconfig", help="cluster to use (default: start apiserver + etcd)")
    parser.add_argument("--models", type=int, default=models)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply --models by this")
    return parser


def model_count(args: argparse.Namespace) -> int:
    """``--models`` times ``--scale``, at least one."""
    return max(1, int(args.models * args.scale))
