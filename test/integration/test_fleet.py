"""The GPU fleet on the real control plane (SPEC §8, issue 14).

The cluster is the test control plane's mixed AMD fleet (aimctrl.testing.fleet: two MI300X
nodes, an MI325X node labelled only in the ``beta.`` form, an MI210 node with count-encoded
labels only, a CPU node), run by KWOK and scheduled by the real kube-scheduler. Every
controller runs (inline discovery) against the real registry's ``mixed-gpus`` image, which
recommends MI300X and MI355X profiles. Tests that add nodes or cordon the fleet's nodes undo it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from aimctrl.testing.fleet import TEST_FLEET, amd_node
from aimctrl.testing.helpers import Kubectl, eventually

pytestmark = pytest.mark.integration

API = "aim.silogen.ai/v1alpha1"
MI300X_NODES = sorted(name for name, model, *_ in TEST_FLEET if model == "MI300X")
FLEET_HAS = "the cluster has MI210 (4 per node), MI300X (8 per node), MI325X (8 per node)"


def _get(kubectl: Kubectl, *args: str) -> dict[str, Any] | None:
    res = kubectl.run("get", *args, "-o", "json", check=False)
    return json.loads(res.stdout) if res.returncode == 0 else None


def _cond(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return dict(c)
    return {}


def _templates(kubectl: Kubectl, model: str) -> dict[str, dict[str, Any]]:
    items = kubectl.json("get", "aimclst", "-l", f"aim.silogen.ai/model={model}")["items"]
    return {t["metadata"]["name"]: t for t in items}


def _by_gpu(templates: dict[str, dict[str, Any]], gpu: str) -> list[dict[str, Any]]:
    return [t for t in templates.values() if t["spec"]["gpuSelector"]["model"] == gpu]


def _statuses(kubectl: Kubectl, model: str, gpu: str) -> list[str]:
    return sorted(
        (t.get("status") or {}).get("status", "") for t in _by_gpu(_templates(kubectl, model), gpu)
    )


def _dump(kubectl: Kubectl, namespace: str) -> str:
    out = kubectl.run(
        "get", "nodes", "-L", "amd.com/gpu.device-id,amd.com/gpu.product-name", check=False
    ).stdout
    out += kubectl.run("get", "aim", "-A", check=False).stdout
    out += kubectl.run("get", "aimservices", "-n", namespace, "-o", "yaml", check=False).stdout
    out += kubectl.run("get", "pods", "-n", namespace, "-o", "wide", check=False).stdout
    return out


@pytest.fixture
def mixed_model(
    kubectl: Kubectl, namespace: str, registries: Any, start_manager: Any
) -> Iterator[str]:
    """An AIMClusterModel on the ``mixed-gpus`` image, discovered by a running manager."""
    start_manager(discovery_mode="inline")
    name = f"mixed-{namespace}"[:63]
    kubectl.apply(
        {
            "apiVersion": API,
            "kind": "AIMClusterModel",
            "metadata": {"name": name},
            "spec": {"image": registries.refs["mixed-gpus"]},
        }
    )
    try:
        eventually(
            lambda: (
                len(_templates(kubectl, name)) == 4
                and _statuses(kubectl, name, "MI300X") == ["Ready", "Ready"]
            ),
            timeout=90,
            what="four templates, the MI300X ones Ready",
        )
        yield name
    finally:
        kubectl.run("delete", "aimclustermodel", name, "--wait=false", check=False)


def _add_node(kubectl: Kubectl, node: dict[str, Any]) -> None:
    kubectl.apply(node)
    name = node["metadata"]["name"]
    kubectl("wait", "--for=condition=Ready", f"node/{name}", "--timeout=60s")


def _delete_nodes(kubectl: Kubectl, *names: str) -> None:
    for name in names:
        kubectl.run("delete", "node", name, "--ignore-not-found", "--wait=true", check=False)


def _service(name: str, namespace: str, model: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "AIMService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"model": {"ref": model}, **spec},
    }


def _service_status(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    return (_get(kubectl, "aimservice", name, "-n", namespace) or {}).get("status") or {}


def _pod_nodes(kubectl: Kubectl, namespace: str, service: str) -> list[str]:
    pods = kubectl.json("get", "pods", "-n", namespace, "-l", f"aim.silogen.ai/service={service}")
    return [p["spec"].get("nodeName") or "" for p in pods["items"]]


def test_a_model_on_the_mixed_fleet_is_ready_with_its_mi355x_templates_not_available(
    kubectl: Kubectl, mixed_model: str
) -> None:
    templates = _templates(kubectl, mixed_model)
    for t in _by_gpu(templates, "MI355X"):
        count = t["spec"]["gpuSelector"]["count"]
        message = f"needs {count} x MI355X; {FLEET_HAS}"
        assert t["status"]["status"] == "NotAvailable"
        gpu = _cond(t, "GPUAvailable")
        assert (gpu["status"], gpu["reason"], gpu["message"]) == (
            "False",
            "GPUNotInCluster",
            message,
        )
        assert (_cond(t, "Ready")["reason"], _cond(t, "Ready")["message"]) == (
            "GPUNotInCluster",
            message,
        )
    for t in _by_gpu(templates, "MI300X"):
        assert _cond(t, "GPUAvailable")["status"] == "True"

    def model_ready() -> dict[str, Any] | None:
        model = _get(kubectl, "aimclustermodel", mixed_model)
        return model if (model or {}).get("status", {}).get("status") == "Ready" else None

    model = eventually(model_ready, timeout=30, what="model Ready")
    message = _cond(model, "Ready")["message"]
    assert message.startswith("2 of 4 template(s) can run on this cluster; NotAvailable: "), message
    assert message.endswith(FLEET_HAS), message


@pytest.mark.parametrize("form", ["standard", "beta", "count"])
def test_the_service_pod_is_bound_to_an_mi300x_node_labelled_in_each_form(
    kubectl: Kubectl, namespace: str, mixed_model: str, form: str
) -> None:
    extra = f"kwok-mi300x-{form}-{namespace}"[:63]
    cordoned: list[str] = []
    try:
        if form != "standard":
            # Only the new node, labelled in this one form, can take the pod.
            _add_node(kubectl, amd_node(extra, "MI300X", form=form))  # type: ignore[arg-type]
            for node in MI300X_NODES:
                kubectl("cordon", node)
                cordoned.append(node)
        kubectl.apply(_service("svc", namespace, mixed_model))
        try:
            eventually(
                lambda: _service_status(kubectl, namespace, "svc").get("status") == "Ready",
                timeout=90,
                what="service Ready",
            )
        except AssertionError as e:
            raise AssertionError(f"{e}\n{_dump(kubectl, namespace)}") from e
        status = _service_status(kubectl, namespace, "svc")
        assert "-1x-mi300x-lat-fp8-" in status["resolvedTemplate"]["name"]
        nodes = _pod_nodes(kubectl, namespace, "svc")
        expected = MI300X_NODES if form == "standard" else [extra]
        assert len(nodes) == 1, nodes
        assert nodes[0] in expected, (form, nodes)
    finally:
        for node in cordoned:
            kubectl.run("uncordon", node, check=False)
        kubectl.run("delete", "aimservice", "svc", "-n", namespace, "--wait=true", check=False)
        if form != "standard":
            _delete_nodes(kubectl, extra)


def test_an_mi355x_node_joining_flips_templates_and_a_waiting_service_then_back(
    kubectl: Kubectl, namespace: str, mixed_model: str
) -> None:
    node = f"kwok-mi355x-{namespace}"[:63]
    kubectl.apply(_service("fast", namespace, mixed_model, templateSelector={"gpuModel": "MI355X"}))
    try:

        def waiting() -> str:
            return str(
                _cond({"status": _service_status(kubectl, namespace, "fast")}, "Ready").get(
                    "reason", ""
                )
            )

        eventually(lambda: waiting() == "NoRunnableTemplate", timeout=30, what="Pending")
        status = _service_status(kubectl, namespace, "fast")
        assert status["status"] == "Pending"
        message = _cond({"status": status}, "Ready")["message"]
        needs = "need 1 x MI300X, 1 x MI355X, 8 x MI300X, 8 x MI355X; "
        assert needs + FLEET_HAS in message, message
        assert message.endswith("templateSelector gpuModel=MI355X"), message
        assert _pod_nodes(kubectl, namespace, "fast") == []

        joined = time.monotonic()
        _add_node(kubectl, amd_node(node, "MI355X"))
        eventually(
            lambda: _statuses(kubectl, mixed_model, "MI355X") == ["Ready", "Ready"],
            timeout=15,
            what="MI355X templates Ready after the node joined",
        )
        flipped = time.monotonic() - joined
        try:
            eventually(
                lambda: _service_status(kubectl, namespace, "fast").get("status") == "Ready",
                timeout=60,
                what="the MI355X service Ready",
            )
        except AssertionError as e:
            raise AssertionError(f"{e}\n{_dump(kubectl, namespace)}") from e
        status = _service_status(kubectl, namespace, "fast")
        assert "-mi355x-" in status["resolvedTemplate"]["name"]
        # A Deployment may still be replacing a pod when the service turns Ready (a surge pod
        # not yet scheduled): the settled state is one pod, on the MI355X node.
        eventually(
            lambda: _pod_nodes(kubectl, namespace, "fast") == [node],
            timeout=30,
            what="the service's pod on the MI355X node",
        )
        print(f"MI355X templates Ready {flipped:.1f} s after the node was created")

        # Cordoning the only MI355X node makes its templates NotAvailable again.
        kubectl("cordon", node)
        eventually(
            lambda: _statuses(kubectl, mixed_model, "MI355X") == ["NotAvailable", "NotAvailable"],
            timeout=15,
            what="MI355X templates NotAvailable after cordon",
        )
        kubectl("uncordon", node)
        eventually(
            lambda: _statuses(kubectl, mixed_model, "MI355X") == ["Ready", "Ready"],
            timeout=15,
            what="MI355X templates Ready after uncordon",
        )
        # Removing it does too.
        _delete_nodes(kubectl, node)
        eventually(
            lambda: _statuses(kubectl, mixed_model, "MI355X") == ["NotAvailable", "NotAvailable"],
            timeout=15,
            what="MI355X templates NotAvailable after the node left",
        )
        model = _get(kubectl, "aimclustermodel", mixed_model)
        assert (model or {}).get("status", {}).get("status") == "Ready"
    finally:
        kubectl.run("delete", "aimservice", "fast", "-n", namespace, "--wait=false", check=False)
        _delete_nodes(kubectl, node)


def test_an_8_gpu_template_is_not_available_on_4_gpu_nodes(
    kubectl: Kubectl, mixed_model: str
) -> None:
    name = f"{mixed_model}-mi210-x8"[:63]
    kubectl.apply(
        {
            "apiVersion": API,
            "kind": "AIMClusterServiceTemplate",
            "metadata": {"name": name},
            "spec": {"modelName": mixed_model, "gpuSelector": {"model": "MI210", "count": 8}},
        }
    )
    try:

        def reason() -> str:
            return str(_cond(_get(kubectl, "aimclst", name), "GPUAvailable").get("reason", ""))

        eventually(lambda: reason() == "NotEnoughGPUsPerNode", timeout=30, what="NotEnough")
        template = _get(kubectl, "aimclst", name)
        assert template is not None
        assert template["status"]["status"] == "NotAvailable"
        assert _cond(template, "GPUAvailable")["message"] == f"needs 8 x MI210; {FLEET_HAS}"
    finally:
        kubectl.run("delete", "aimclst", name, "--wait=false", check=False)


def test_the_cluster_gpus_gauge_counts_the_fleet(
    kubectl: Kubectl, crds_installed: None, start_manager: Any
) -> None:
    manager = start_manager(only=("template",))

    def gauge() -> dict[str, float]:
        text = httpx.get(f"http://127.0.0.1:{manager.metrics_port}/metrics", timeout=5).text
        values = {}
        for line in text.splitlines():
            if line.startswith("aimctrl_cluster_gpus{"):
                model = line.split('model="', 1)[1].split('"', 1)[0]
                values[model] = float(line.rsplit(" ", 1)[1])
        return values

    values = eventually(gauge, timeout=30, what="aimctrl_cluster_gpus")
    assert values == {"MI210": 4.0, "MI300X": 16.0, "MI325X": 8.0}
