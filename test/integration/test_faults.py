"""Fault injection against the real control plane: the catalogue converges, nothing lost or doubled.

Each scenario creates ``AIMCTRL_FAULT_SCALE`` cluster models (default 100, so that this file stays
within its CI budget on a 2-core machine; the issue's figure is 500) over four distinct images with
four recommended deployments each (inline discovery, ``autoCreateTemplates``), plus AIMServices
naming two other images, two services per image, which make the service reconciler create auto
models. While that converges, a fault hits: the kube-apiserver restarts; etcd is compacted and the
watches expire; the manager process is SIGKILLed ten times; the leader of two managers is killed.

The final state must equal a clean run's: a module fixture converges one model per image and one
service per image with no fault, and every model (service) of a scenario must then show, after
normalisation (its own name, uid and timestamps taken out), exactly the state of the clean model
(service) of its image — status, conditions, image metadata and the set of its templates (names,
specs, owner, labels, status, profile). On top of that, each model has exactly its four templates,
no stray template carries the scenario's prefix, and each service image has exactly one auto model.
The manager is a real ``python -m aimctrl run`` process; "never exits" is checked on it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from aimctrl.api.v1alpha1.model import AIMClusterModel, AIMModel
from aimctrl.api.v1alpha1.service import AIMService
from aimctrl.api.v1alpha1.template import AIMClusterServiceTemplate, AIMServiceTemplate
from aimctrl.controllers.context import resource_of
from aimctrl.discovery.labels import RecommendedDeployment
from aimctrl.kube.client import KubeClient
from aimctrl.resolve.models import auto_model_name
from aimctrl.resolve.templates import template_name
from aimctrl.testing.controlplane import ControlPlane, free_port
from aimctrl.testing.helpers import Kubectl, eventually
from aimctrl.testing.images import build_image, push_image

pytestmark = pytest.mark.integration

SCALE = int(os.environ.get("AIMCTRL_FAULT_SCALE", "100"))
API = "aim.silogen.ai/v1alpha1"
TEST_LABEL = "faults.aimctrl.test/run"
AUTO_CREATED = "aim.silogen.ai/auto-created"
MODEL_IMAGES = 4
SERVICE_IMAGES = 2
SERVICES_PER_IMAGE = 2
CONVERGE_TIMEOUT = 60.0 + SCALE * 1.0

Object = dict[str, Any]
CLUSTER_MODELS = resource_of(AIMClusterModel.RESOURCE)
MODELS = resource_of(AIMModel.RESOURCE)
CLUSTER_TEMPLATES = resource_of(AIMClusterServiceTemplate.RESOURCE)
NAMESPACED_TEMPLATES = resource_of(AIMServiceTemplate.RESOURCE)
SERVICES = resource_of(AIMService.RESOURCE)


# --------------------------------------------------------------------------- images


@dataclass(frozen=True)
class Catalog:
    model_images: tuple[str, ...]
    service_images: tuple[str, ...]


def _labels(name: str, gpu: str) -> dict[str, str]:
    deployments = [
        {"gpuModel": gpu, "gpuCount": count, "precision": precision, "metric": metric}
        for count, metric, precision in (
            (1, "latency", "fp8"),
            (1, "throughput", "fp16"),
            (8, "latency", "fp8"),
            (8, "throughput", "fp16"),
        )
    ]
    return {
        "org.amd.silogen.model.canonicalName": name,
        "org.amd.silogen.model.deployments": json.dumps(deployments),
        "org.amd.silogen.model.source": f"hf://{name}",
    }


@pytest.fixture(scope="module")
def catalog(registries: Any) -> Catalog:
    """Distinct images (4 deployments each) on the open registry: for models and for services."""
    registry = registries.env.registry
    refs: list[str] = []
    with httpx.Client(timeout=30) as client:
        for i in range(MODEL_IMAGES + SERVICE_IMAGES):
            gpu = ("MI300X", "MI325X")[i % 2]
            image = build_image(_labels(f"faults/model-{i}", gpu))
            push_image(client, f"http://{registry}", f"faults/model-{i}", "1", image)
            refs.append(f"{registry}/faults/model-{i}:1")
    return Catalog(tuple(refs[:MODEL_IMAGES]), tuple(refs[MODEL_IMAGES:]))


# --------------------------------------------------------------------------- the manager


class ManagerProcess:
    """``python -m aimctrl run`` against the test control plane, its log in a file."""

    def __init__(
        self, kubeconfig: str, log: Path, *, operator_namespace: str, lease_namespace: str = ""
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log = log
        self.operator_namespace = operator_namespace
        self.lease_namespace = lease_namespace
        self.metrics = free_port()
        self.probes = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> ManagerProcess:
        argv = [
            sys.executable,
            "-m",
            "aimctrl",
            "run",
            f"--kubeconfig={self.kubeconfig}",
            f"--operator-namespace={self.operator_namespace}",
            f"--metrics-bind-address=127.0.0.1:{self.metrics}",
            f"--health-probe-bind-address=127.0.0.1:{self.probes}",
            "--discovery-mode=inline",
            "--log-format=json",
            "--workers=4",
        ]
        if self.lease_namespace:
            argv += ["--leader-elect", f"--leader-election-namespace={self.lease_namespace}"]
        with self.log.open("ab") as out:
            out.write(f"\n==== start {self.starts} ====\n".encode())
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        self.starts += 1
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ready(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.probes}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def reconciles(self) -> float:
        """Sum of ``controller_runtime_reconcile_total`` over controllers and results."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("controller_runtime_reconcile_total{")
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


@pytest.fixture
def managers(
    kubeconfig_path: str, crds_installed: None, operator_namespace: str, tmp_path: Path
) -> Iterator[Callable[..., ManagerProcess]]:
    made: list[ManagerProcess] = []

    def make(name: str = "manager", *, lease_namespace: str = "") -> ManagerProcess:
        m = ManagerProcess(
            kubeconfig_path,
            tmp_path / f"{name}.log",
            operator_namespace=operator_namespace,
            lease_namespace=lease_namespace,
        )
        made.append(m)
        return m

    yield make
    for m in made:
        m.stop()


@pytest.fixture(scope="module")
def kube(kubeconfig_path: str) -> Iterator[KubeClient]:
    client = KubeClient.from_kubeconfig(kubeconfig_path)
    yield client
    client.close()


# --------------------------------------------------------------------------- a scenario's objects


@dataclass
class Scenario:
    """``n`` cluster models over the model images and services over the service images."""

    kube: KubeClient
    kubectl: Kubectl
    catalog: Catalog
    namespace: str
    n: int
    services_per_image: int = SERVICES_PER_IMAGE
    prefix: str = field(default_factory=lambda: f"f{uuid.uuid4().hex[:6]}")

    def model_name(self, i: int) -> str:
        return f"{self.prefix}-m{i:04d}"

    def model_image(self, i: int) -> int:
        return i % len(self.catalog.model_images)

    def service_name(self, image: int, j: int) -> str:
        return f"svc-{image}-{j}"

    def create(self, models: range | None = None, *, services: bool = True) -> None:
        """Create the models ``models`` (default: all) and, if ``services``, the services."""
        docs: list[Object] = [
            {
                "apiVersion": API,
                "kind": "AIMClusterModel",
                "metadata": {"name": self.model_name(i), "labels": {TEST_LABEL: self.prefix}},
                "spec": {
                    "image": self.catalog.model_images[self.model_image(i)],
                    "discovery": {"autoCreateTemplates": True},
                },
            }
            for i in (range(self.n) if models is None else models)
        ]
        for k, image in enumerate(self.catalog.service_images if services else ()):
            for j in range(self.services_per_image):
                docs.append(
                    {
                        "apiVersion": API,
                        "kind": "AIMService",
                        "metadata": {"name": self.service_name(k, j), "namespace": self.namespace},
                        "spec": {"model": {"image": image}, "replicas": 0},
                    }
                )
        self.kubectl("create", "-f", "-", input="\n---\n".join(json.dumps(d) for d in docs))

    def delete(self) -> None:
        self.kubectl.run(
            "delete",
            "aimclustermodels",
            "-l",
            f"{TEST_LABEL}={self.prefix}",
            "--wait=false",
            check=False,
        )

    # -- reading the state back ----------------------------------------------------------------

    def models(self) -> list[Object]:
        got = self.kube.list(CLUSTER_MODELS, label_selector=f"{TEST_LABEL}={self.prefix}")
        return list(got["items"])

    def templates(self) -> list[Object]:
        items = self.kube.list(CLUSTER_TEMPLATES)["items"]
        return [t for t in items if t["metadata"]["name"].startswith(self.prefix + "-")]

    def services(self) -> list[Object]:
        return list(self.kube.list(SERVICES, namespace=self.namespace)["items"])

    def auto_models(self) -> list[Object]:
        items = self.kube.list(MODELS, namespace=self.namespace)["items"]
        return [m for m in items if m["metadata"].get("labels", {}).get(AUTO_CREATED) == "true"]

    def progress(self) -> tuple[int, int]:
        """(models Ready, templates present); (-1, -1) while the apiserver is unreachable."""
        try:
            ready = sum(1 for m in self.models() if _status(m) == "Ready")
            return ready, len(self.templates())
        except Exception:  # noqa: BLE001 - the apiserver is restarting: not an answer
            return -1, -1

    def converged(self) -> bool:
        try:
            models = self.models()
            templates = self.templates()
            services = self.services()
        except Exception:  # noqa: BLE001 - the apiserver is restarting: not converged
            return False
        return (
            len(models) == self.n
            and all(_status(m) == "Ready" for m in models)
            and len(templates) == 4 * self.n
            and all(_status(t) == "Ready" for t in templates)
            and all(_status(s) == "Ready" for s in services)
        )

    def wait_converged(self, *, timeout: float = CONVERGE_TIMEOUT, why: str = "") -> float:
        started = time.monotonic()
        try:
            eventually(self.converged, timeout=timeout, interval=1.0, what="convergence")
        except AssertionError as e:
            raise AssertionError(f"{e} {why}\nprogress={self.progress()}\n{self.debug()}") from None
        return time.monotonic() - started

    def debug(self) -> str:
        lines = []
        for m in self.models():
            if _status(m) != "Ready":
                lines.append(f"model {m['metadata']['name']}: {json.dumps(m.get('status'))[:600]}")
        for s in self.services():
            if _status(s) != "Ready":
                status = json.dumps(s.get("status"))[:600]
                lines.append(f"service {s['metadata']['name']}: {status}")
        return "\n".join(lines[:10])

    def wait_progress(self, fraction: float, *, timeout: float = 120.0) -> None:
        """Until at least ``fraction`` of the templates exist (convergence under way)."""
        want = max(1, int(4 * self.n * fraction))
        eventually(
            lambda: self.progress()[1] >= want, timeout=timeout, interval=0.2, what=f"{want} tmpl"
        )

    # -- the comparison --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Normalised state: ``model/<i>`` and ``service/<image>/<j>`` → comparable dicts."""
        by_model: dict[str, list[Object]] = {}
        for t in self.templates():
            owners = t["metadata"].get("ownerReferences") or [{}]
            by_model.setdefault(owners[0].get("name", "?"), []).append(t)
        out: dict[str, Any] = {}
        for m in self.models():
            name = m["metadata"]["name"]
            index = int(name.rsplit("-m", 1)[1])
            out[f"model/{index}"] = _normal_model(m, by_model.pop(name, []))
        strays = (t["metadata"]["name"] for ts in by_model.values() for t in ts)
        out["stray templates"] = sorted(strays)
        for s in self.services():
            _, image, j = s["metadata"]["name"].split("-")
            out[f"service/{image}/{j}"] = _normal_service(s)
        return out

    def expected(self, baseline: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            f"model/{i}": baseline[f"model/{self.model_image(i)}"] for i in range(self.n)
        }
        out["stray templates"] = []
        for k in range(len(self.catalog.service_images)):
            for j in range(self.services_per_image):
                out[f"service/{k}/{j}"] = baseline[f"service/{k}/0"]
        return out

    def assert_matches(self, baseline: dict[str, Any]) -> None:
        got, want = self.snapshot(), self.expected(baseline)
        differing = sorted(k for k in want.keys() | got.keys() if got.get(k) != want.get(k))
        detail = "\n".join(f"{k}: {_diff(got.get(k), want.get(k))}" for k in differing[:5])
        assert not differing, f"{len(differing)} objects differ from the clean run:\n{detail}"
        autos = self.auto_models()
        names = sorted(m["metadata"]["name"] for m in autos)
        assert names == sorted(auto_model_name(i) for i in self.catalog.service_images), names
        templates = self.kube.list(NAMESPACED_TEMPLATES, namespace=self.namespace)["items"]
        for auto in autos:
            name = auto["metadata"]["name"]
            assert _status(auto) == "Ready", auto.get("status")
            owned = [t for t in templates if t["metadata"]["name"].startswith(name + "-")]
            assert len(owned) == 4, [t["metadata"]["name"] for t in owned]
        cluster_autos = [
            m
            for m in self.kube.list(CLUSTER_MODELS)["items"]
            if m["spec"]["image"] in self.catalog.service_images
        ]
        assert cluster_autos == [], "a cluster auto model was created for a service image"


def _diff(got: Any, want: Any) -> str:
    if isinstance(got, dict) and isinstance(want, dict):
        keys = sorted(k for k in got.keys() | want.keys() if got.get(k) != want.get(k))
        return "; ".join(f"{k}: got {got.get(k)!r:.600} want {want.get(k)!r:.600}" for k in keys)
    return f"got {got!r:.600} want {want!r:.600}"


def _status(obj: Object) -> str:
    return str((obj.get("status") or {}).get("status", ""))


def _conditions(obj: Object) -> list[tuple[str, str, str]]:
    return sorted(
        (c["type"], c["status"], c.get("reason", ""))
        for c in (obj.get("status") or {}).get("conditions") or ()
    )


def _normal_model(model: Object, templates: list[Object]) -> dict[str, Any]:
    name, uid = model["metadata"]["name"], model["metadata"]["uid"]
    status = model.get("status") or {}
    found = dict(status.get("discoveredMetadata") or {})
    found.pop("discoveredAt", None)
    normal_templates = []
    for t in templates:
        meta = t["metadata"]
        owners = [
            (o["kind"], o["name"] == name, o["uid"] == uid, o.get("controller"))
            for o in meta.get("ownerReferences") or ()
        ]
        labels = dict(meta.get("labels") or {})
        assert labels.pop("aim.silogen.ai/model", None) == name, meta
        spec = dict(t["spec"])
        assert spec.pop("modelName") == name, t
        tstatus = t.get("status") or {}
        normal_templates.append(
            {
                "name": meta["name"].removeprefix(name)[:-5],  # the tail hashes the model name
                "spec": spec,
                "labels": labels,
                "owners": owners,
                "status": tstatus.get("status"),
                "conditions": _conditions(t),
                "profile": tstatus.get("profile"),
                "resolvedModel": (tstatus.get("resolvedModel") or {}).get("name") == name,
            }
        )
    deployments = ((status.get("imageMetadata") or {}).get("model") or {}).get(
        "recommendedDeployments"
    ) or []
    want_names = {template_name(name, RecommendedDeployment.model_validate(d)) for d in deployments}
    return {
        "template names as specified": want_names == {t["metadata"]["name"] for t in templates},
        "status": status.get("status"),
        "observedGeneration": status.get("observedGeneration"),
        "conditions": _conditions(model),
        "imageMetadata": status.get("imageMetadata"),
        "discoveredMetadata": found,
        "templates": sorted(normal_templates, key=lambda t: t["name"]),
    }


def _normal_service(service: Object) -> dict[str, Any]:
    status = service.get("status") or {}
    namespace = service["metadata"]["namespace"]
    return {
        "status": status.get("status"),
        "conditions": _conditions(service),
        "resolvedModel": {
            k: ("<own>" if k == "namespace" and v == namespace else v)
            for k, v in (status.get("resolvedModel") or {}).items()
            if k != "uid"
        },
        "resolvedTemplate": (status.get("resolvedTemplate") or {}).get("name"),
        "resolvedResources": status.get("resolvedResources"),
        "templateCandidates": status.get("templateCandidates"),
    }


@pytest.fixture
def scenario(
    kube: KubeClient, kubectl: Kubectl, catalog: Catalog, namespace: str
) -> Iterator[Callable[..., Scenario]]:
    made: list[Scenario] = []

    def make(n: int = SCALE) -> Scenario:
        s = Scenario(kube=kube, kubectl=kubectl, catalog=catalog, namespace=namespace, n=n)
        made.append(s)
        return s

    yield make
    for s in made:
        s.delete()


@pytest.fixture(scope="module")
def baseline(
    kube: KubeClient,
    kubectl: Kubectl,
    catalog: Catalog,
    kubeconfig_path: str,
    crds_installed: None,
    operator_namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """The clean run: one model per image and one service per service image, no faults."""
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", namespace)
    clean = Scenario(
        kube=kube,
        kubectl=kubectl,
        catalog=catalog,
        namespace=namespace,
        n=MODEL_IMAGES,
        services_per_image=1,
    )
    log = tmp_path_factory.mktemp("baseline") / "manager.log"
    manager = ManagerProcess(kubeconfig_path, log, operator_namespace=operator_namespace).start()
    try:
        clean.create()
        took = clean.wait_converged(timeout=120)
        print(f"\nclean run: {MODEL_IMAGES} models converged in {took:.1f}s")
        time.sleep(2)  # nothing must change after convergence; take the snapshot then
        snap = clean.snapshot()
        assert snap["stray templates"] == []
    finally:
        manager.stop()  # before the scenarios: each must be converged by its own managers only
        clean.delete()
        kubectl.run("delete", "namespace", namespace, "--wait=false", check=False)
    return snap


# --------------------------------------------------------------------------- tests


@pytest.mark.slow
def test_apiserver_restart_during_convergence_loses_and_duplicates_nothing(
    control_plane: ControlPlane,
    baseline: dict[str, Any],
    scenario: Callable[..., Scenario],
    managers: Callable[..., ManagerProcess],
) -> None:
    run = scenario()
    manager = managers().start()
    eventually(manager.ready, timeout=60, what="manager ready")
    started = time.monotonic()
    run.create()
    run.wait_progress(0.2)
    at = run.progress()
    control_plane.restart_apiserver()
    assert manager.alive(), manager.tail()
    took = run.wait_converged(why=manager.tail())
    print(f"\n{SCALE} models: restart at {at}; converged {time.monotonic() - started:.1f}s")
    assert manager.alive(), "the manager exited:\n" + manager.tail()
    assert manager.ready()
    run.assert_matches(baseline)
    assert took >= 0


@pytest.mark.slow
def test_compaction_and_expired_watches_relist_to_the_clean_state(
    control_plane: ControlPlane,
    baseline: dict[str, Any],
    scenario: Callable[..., Scenario],
    managers: Callable[..., ManagerProcess],
) -> None:
    run = scenario()
    manager = managers().start()
    eventually(manager.ready, timeout=60, what="manager ready")
    run.create()
    run.wait_progress(0.2)
    # Compaction alone: watches that are open keep going, a watch (re)started from an older RV
    # gets 410 Gone. Then take the apiserver away, let writes land in etcd (the other tests'
    # helper writes nothing; the manager cannot write), compact past every informer's RV, and
    # bring it back: every watch resumes from a compacted RV, so every informer must relist.
    control_plane.etcd_compact()
    run.wait_progress(0.4)
    control_plane.stop_apiserver()
    control_plane.etcd_compact()
    time.sleep(1)
    control_plane.start_apiserver()
    assert manager.alive(), manager.tail()
    run.wait_converged(why=manager.tail())
    assert manager.alive(), "the manager exited:\n" + manager.tail()
    run.assert_matches(baseline)
    relists = manager.log.read_text(errors="replace").count("410")
    print(f"\nlog lines mentioning 410: {relists}")


@pytest.mark.slow
def test_manager_sigkilled_ten_times_converges_to_the_clean_state(
    baseline: dict[str, Any],
    scenario: Callable[..., Scenario],
    managers: Callable[..., ManagerProcess],
) -> None:
    run = scenario()
    manager = managers()
    rng = random.Random(os.environ.get("AIMCTRL_FAULT_SEED", "9"))  # noqa: S311 - not crypto
    run.create()
    kills: list[tuple[float, tuple[int, int]]] = []
    for _ in range(10):
        manager.start()
        # A random moment: sometimes before the caches are synced, mostly while reconciling.
        time.sleep(rng.uniform(1.0, 5.0))
        kills.append((round(time.monotonic(), 1), run.progress()))
        manager.kill()
    manager.start()
    run.wait_converged(why=manager.tail())
    print(f"\nkills at (time, (models ready, templates)): {kills}")
    assert manager.alive(), manager.tail()
    run.assert_matches(baseline)


@pytest.mark.slow
def test_convergence_continues_after_the_leader_is_killed(
    baseline: dict[str, Any],
    scenario: Callable[..., Scenario],
    managers: Callable[..., ManagerProcess],
    namespace: str,
    kubectl: Kubectl,
) -> None:
    """Beyond test_leader_election.py: the standby finishes the leader's work, exactly once."""
    run = scenario()
    a = managers("a", lease_namespace=namespace).start()
    eventually(lambda: _lease_holder(kubectl, namespace), timeout=30, what="a leads")
    b = managers("b", lease_namespace=namespace).start()
    eventually(b.ready, timeout=60, what="standby ready")
    half = run.n // 2
    run.create(range(half), services=False)
    eventually(lambda: run.progress()[1] >= 2 * half, timeout=120, what="half the templates")
    leader = _lease_holder(kubectl, namespace)
    a.kill()
    killed = time.monotonic()
    # Work that only the new leader can do: the other half of the models, and the services.
    run.create(range(half, run.n))
    assert b.reconciles() == 0, "the standby reconciled while it was not the leader"
    run.wait_converged(why=b.tail())
    print(f"\nconverged {time.monotonic() - killed:.1f}s after the leader was killed")
    assert b.alive(), b.tail()
    assert _lease_holder(kubectl, namespace) not in ("", leader)
    assert b.reconciles() > 0
    run.assert_matches(baseline)


def _lease_holder(kubectl: Kubectl, namespace: str) -> str:
    res = kubectl.run(
        "get",
        "lease",
        "aimctrl-leader.aim.silogen.ai",
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.holderIdentity}",
        check=False,
    )
    return res.stdout.strip() if res.returncode == 0 else ""
