"""The generated CRDs make a real API server reject invalid AIM objects, naming the field.

Each case is applied with ``kubectl apply -f -``; the rejection must be a non-zero exit with the
offending field path in stderr. Update cases first create a valid object, then apply the change
(CEL transition rules only run on updates). The samples are the positive control: every one of
them is accepted (server-side dry run).
"""

from __future__ import annotations

import copy
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from aimctrl.testing.controlplane import kubectl_bin  # the harness' version-matched kubectl

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
API_VERSION = "aim.silogen.ai/v1alpha1"
IMAGE = "ghcr.io/silogen/aim-llama:0.7.0"


def _kubectl(
    kubeconfig: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubectl_bin(), f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _obj(kind: str, name: str, spec: dict[str, Any] | None, *, namespaced: bool) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}}
    if namespaced:
        obj["metadata"]["namespace"] = "NAMESPACE"
    if spec is not None:
        obj["spec"] = spec
    return obj


def model(spec: dict[str, Any] | None, *, cluster: bool = False) -> dict[str, Any]:
    kind = "AIMClusterModel" if cluster else "AIMModel"
    return _obj(kind, "m", spec, namespaced=not cluster)


def template(spec: dict[str, Any], *, cluster: bool = False) -> dict[str, Any]:
    kind = "AIMClusterServiceTemplate" if cluster else "AIMServiceTemplate"
    return _obj(kind, "t", spec, namespaced=not cluster)


def service(spec: dict[str, Any] | None) -> dict[str, Any]:
    return _obj("AIMService", "s", spec, namespaced=True)


def runtime_config(spec: dict[str, Any], *, cluster: bool = False) -> dict[str, Any]:
    kind = "AIMClusterRuntimeConfig" if cluster else "AIMRuntimeConfig"
    return _obj(kind, "rc", spec, namespaced=not cluster)


GOOD_TEMPLATE = {
    "modelName": "llama",
    "metric": "latency",
    "precision": "fp8",
    "gpuSelector": {"model": "MI300X", "count": 1},
}


def _changed(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(GOOD_TEMPLATE)
    for key, value in changes.items():
        if value is None:
            spec.pop(key)
        else:
            spec[key] = value
    return spec


@dataclass(frozen=True)
class Case:
    id: str
    obj: dict[str, Any]
    path: str
    before: dict[str, Any] | None = None


CASES = [
    # Models.
    Case("model-missing-image", model({}), "spec.image"),
    Case("model-empty-image", model({"image": ""}), "spec.image"),
    Case("model-image-with-space", model({"image": "a b"}), "spec.image"),
    Case("model-image-wrong-type", model({"image": 123}), "spec.image"),
    Case("cluster-model-missing-spec", model(None, cluster=True), "spec"),
    Case("cluster-model-empty-image", model({"image": ""}, cluster=True), "spec.image"),
    Case(
        "model-discovery-enabled-not-bool",
        model({"image": IMAGE, "discovery": {"enabled": "yes"}}),
        "spec.discovery.enabled",
    ),
    Case(
        "model-bad-quantity",
        model({"image": IMAGE, "resources": {"limits": {"cpu": "eight"}}}),
        "spec.resources.limits.cpu",
    ),
    Case(
        "model-pull-secret-without-name",
        model({"image": IMAGE, "imagePullSecrets": [{}]}),
        "spec.imagePullSecrets[0].name",
    ),
    # Services.
    Case("service-ref-and-image", service({"model": {"ref": "m", "image": IMAGE}}), "spec.model"),
    Case("service-neither-ref-nor-image", service({"model": {}}), "spec.model"),
    Case("service-missing-model", service({"replicas": 1}), "spec.model"),
    Case("service-empty-ref", service({"model": {"ref": ""}}), "spec.model.ref"),
    Case("service-empty-image", service({"model": {"image": ""}}), "spec.model.image"),
    Case(
        "service-negative-replicas",
        service({"model": {"ref": "m"}, "replicas": -1}),
        "spec.replicas",
    ),
    Case(
        "service-replicas-wrong-type",
        service({"model": {"ref": "m"}, "replicas": "two"}),
        "spec.replicas",
    ),
    Case(
        "service-env-without-name",
        service({"model": {"ref": "m"}, "env": [{"value": "x"}]}),
        "spec.env[0].name",
    ),
    Case(
        "service-env-duplicate-name",
        service({"model": {"ref": "m"}, "env": [{"name": "A"}, {"name": "A"}]}),
        "spec.env[1]",
    ),
    # Templates.
    Case("template-missing-model-name", template(_changed(modelName=None)), "spec.modelName"),
    Case("template-bad-metric", template(_changed(metric="fast")), "spec.metric"),
    Case("template-bad-precision", template(_changed(precision="fp64")), "spec.precision"),
    Case(
        "template-zero-gpus",
        template(_changed(gpuSelector={"model": "MI300X", "count": 0})),
        "spec.gpuSelector.count",
    ),
    Case(
        "cluster-template-negative-gpus",
        template(_changed(gpuSelector={"model": "MI300X", "count": -2}), cluster=True),
        "spec.gpuSelector.count",
    ),
    Case(
        "template-gpu-count-wrong-type",
        template(_changed(gpuSelector={"count": "1"})),
        "spec.gpuSelector.count",
    ),
    Case(
        "cluster-template-empty-model-name",
        template(_changed(modelName=""), cluster=True),
        "spec.modelName",
    ),
    # Runtime configs.
    Case(
        "runtime-config-bad-creation-scope",
        runtime_config({"model": {"creationScope": "Global"}}),
        "spec.model.creationScope",
    ),
    Case(
        "cluster-runtime-config-auto-discovery-not-bool",
        runtime_config({"model": {"autoDiscovery": "true"}}, cluster=True),
        "spec.model.autoDiscovery",
    ),
    # Immutable template identity (create, then update).
    Case(
        "template-model-name-changed",
        template(_changed(modelName="other")),
        "spec.modelName",
        before=template(GOOD_TEMPLATE),
    ),
    Case(
        "template-metric-changed",
        template(_changed(metric="throughput")),
        "spec.metric",
        before=template(GOOD_TEMPLATE),
    ),
    Case(
        "template-precision-removed",
        template(_changed(precision=None)),
        "spec.precision",
        before=template(GOOD_TEMPLATE),
    ),
    Case(
        "cluster-template-gpu-count-changed",
        template(_changed(gpuSelector={"model": "MI300X", "count": 2}), cluster=True),
        "spec.gpuSelector",
        before=template(GOOD_TEMPLATE, cluster=True),
    ),
    Case(
        "template-gpu-selector-added",
        template(GOOD_TEMPLATE),
        "spec.gpuSelector",
        before=template(_changed(gpuSelector=None)),
    ),
]


@pytest.fixture(scope="module")
def admission_namespace(kubeconfig_path: str, crds_installed: None) -> Iterator[str]:
    name = f"adm-{uuid.uuid4().hex[:8]}"
    res = _kubectl(kubeconfig_path, "create", "namespace", name)
    assert res.returncode == 0, res.stderr
    yield name
    _kubectl(kubeconfig_path, "delete", "namespace", name, "--wait=false")


def _render(obj: dict[str, Any], *, name: str, namespace: str) -> str:
    out = copy.deepcopy(obj)
    out["metadata"]["name"] = name
    if "namespace" in out["metadata"]:
        out["metadata"]["namespace"] = namespace
    return json.dumps(out)


def _delete(kubeconfig: str, obj: dict[str, Any], *, name: str, namespace: str) -> None:
    args = ["delete", obj["kind"].lower(), name, "--ignore-not-found", "--wait=false"]
    if "namespace" in obj["metadata"]:
        args += ["-n", namespace]
    _kubectl(kubeconfig, *args)


def test_table_has_enough_cases() -> None:
    assert len(CASES) >= 22
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_invalid_object_is_rejected_naming_the_field(
    case: Case, kubeconfig_path: str, admission_namespace: str
) -> None:
    name = case.id[:63]
    try:
        if case.before is not None:
            res = _kubectl(
                kubeconfig_path,
                "apply",
                "-f",
                "-",
                stdin=_render(case.before, name=name, namespace=admission_namespace),
            )
            assert res.returncode == 0, f"valid object rejected: {res.stderr}"
        res = _kubectl(
            kubeconfig_path,
            "apply",
            "-f",
            "-",
            stdin=_render(case.obj, name=name, namespace=admission_namespace),
        )
        assert res.returncode != 0, f"accepted: {res.stdout}"
        assert case.path in res.stderr, res.stderr
    finally:
        _delete(kubeconfig_path, case.obj, name=name, namespace=admission_namespace)


def test_status_subresource_rejects_unknown_status_value(
    kubeconfig_path: str, admission_namespace: str
) -> None:
    name = "status-enum"
    body = _render(model({"image": IMAGE}), name=name, namespace=admission_namespace)
    assert _kubectl(kubeconfig_path, "apply", "-f", "-", stdin=body).returncode == 0
    res = _kubectl(
        kubeconfig_path,
        "patch",
        "aimmodel",
        name,
        "-n",
        admission_namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"status": "Broken"}}),
    )
    assert res.returncode != 0, res.stdout
    assert "status.status" in res.stderr


def _samples() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((ROOT / "config" / "samples").glob("aim_*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def test_every_sample_is_accepted(kubeconfig_path: str, admission_namespace: str) -> None:
    for doc in _samples():
        body = _render(doc, name=doc["metadata"]["name"], namespace=admission_namespace)
        res = _kubectl(kubeconfig_path, "apply", "--dry-run=server", "-f", "-", stdin=body)
        assert res.returncode == 0, f"{doc['kind']}/{doc['metadata']['name']}: {res.stderr}"


def test_defaults_are_applied_by_the_server(kubeconfig_path: str, admission_namespace: str) -> None:
    body = _render(service({"model": {"ref": "m"}}), name="defaults", namespace=admission_namespace)
    res = _kubectl(
        kubeconfig_path, "apply", "--dry-run=server", "-o", "json", "-f", "-", stdin=body
    )
    assert res.returncode == 0, res.stderr
    spec = json.loads(res.stdout)["spec"]
    assert spec["replicas"] == 1
    assert spec["runtimeConfigName"] == "default"


def test_kubectl_get_aim_lists_every_kind_and_explain_shows_descriptions(
    kubeconfig_path: str, admission_namespace: str
) -> None:
    res = _kubectl(kubeconfig_path, "api-resources", "--categories=aim", "-o", "name")
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.split()) == 7, res.stdout
    assert _kubectl(kubeconfig_path, "get", "aim", "-A").returncode == 0
    res = _kubectl(kubeconfig_path, "explain", "aimservice.spec.model")
    assert res.returncode == 0, res.stderr
    assert "by name (ref) or by container image (image)" in res.stdout


def test_get_aim_shows_created_objects_with_printer_columns_and_explain_describes_discovery(
    kubeconfig_path: str, admission_namespace: str
) -> None:
    obj = model({"image": "registry.example/org/listed:1"})
    created = _kubectl(
        kubeconfig_path,
        "apply",
        "-f",
        "-",
        stdin=_render(obj, name="listed", namespace=admission_namespace),
    )
    assert created.returncode == 0, created.stderr
    try:
        res = _kubectl(kubeconfig_path, "get", "aim", "-n", admission_namespace)
        assert res.returncode == 0, res.stderr
        header = res.stdout.splitlines()[0].split()
        assert header[:2] == ["NAME", "STATUS"], res.stdout  # the AIMModel printer columns
        assert "IMAGE" in header, res.stdout
        assert "aimmodel.aim.silogen.ai/listed" in res.stdout
        assert "registry.example/org/listed:1" in res.stdout
    finally:
        _delete(kubeconfig_path, obj, name="listed", namespace=admission_namespace)
    res = _kubectl(kubeconfig_path, "explain", "aimclustermodel.spec.discovery")
    assert res.returncode == 0, res.stderr
    assert "DESCRIPTION:" in res.stdout, res.stdout
    assert "enabled" in res.stdout, res.stdout


def test_install_manifests_are_accepted(kubeconfig_path: str, admission_namespace: str) -> None:
    """config/default, built with kustomize, passes server-side validation (dry run; the
    namespaced parts are retargeted to a scratch namespace so nothing is installed)."""
    built = _kubectl(kubeconfig_path, "kustomize", str(ROOT / "config" / "default"))
    assert built.returncode == 0, built.stderr
    docs = [d for d in yaml.safe_load_all(built.stdout) if d and d["kind"] != "Namespace"]
    kinds = {d["kind"] for d in docs}
    assert {"CustomResourceDefinition", "Deployment", "ClusterRole", "Role"} <= kinds
    for doc in docs:
        if doc["metadata"].get("namespace"):
            doc["metadata"]["namespace"] = admission_namespace
        for subject in doc.get("subjects", []):
            subject["namespace"] = admission_namespace
    body = "\n---\n".join(json.dumps(d) for d in docs)
    res = _kubectl(kubeconfig_path, "apply", "--dry-run=server", "-f", "-", stdin=body)
    assert res.returncode == 0, res.stderr
