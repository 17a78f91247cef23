"""Template generation and template status against a real API server (issue 6).

Most tests make a model "discovered" themselves, by writing its status through the status
subresource the way the discovery reconciler would, and run only the template-generation and
template reconcilers. One end-to-end test runs every controller against a real sample image.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aimctrl.api.v1alpha1.model import RecommendedDeployment
from aimctrl.manager import Manager
from aimctrl.resolve.templates import template_name
from aimctrl.testing.helpers import Kubectl, eventually

pytestmark = pytest.mark.integration

API = "aim.silogen.ai/v1alpha1"
ONLY = ("templategen", "template")
FOUR = [
    {"gpuModel": "MI300X", "gpuCount": 1, "metric": "latency", "precision": "fp8"},
    {"gpuModel": "MI300X", "gpuCount": 8, "metric": "throughput", "precision": "fp16"},
    {"gpuModel": "MI300X", "gpuCount": 1, "metric": "throughput", "precision": "fp16"},
    {"gpuModel": "MI300X", "gpuCount": 8, "metric": "latency", "precision": "fp8"},
]
QUIET_SECONDS = 5.0


def names_for(model: str, deployments: list[dict[str, Any]]) -> set[str]:
    return {template_name(model, RecommendedDeployment.model_validate(d)) for d in deployments}


def model_obj(name: str, *, namespace: str = "", **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": API,
        "kind": "AIMModel" if namespace else "AIMClusterModel",
        "metadata": meta,
        "spec": {"image": f"registry.example/{name}:1", **spec},
    }


def kind_args(namespace: str, kind: str) -> list[str]:
    return [kind, "-n", namespace] if namespace else [kind]


def discover(
    kubectl: Kubectl,
    name: str,
    deployments: list[dict[str, Any]],
    *,
    namespace: str = "",
    with_conditions: bool = True,
) -> None:
    """Write what discovery would: imageMetadata (+ MetadataExtracted True the first time)."""
    status: dict[str, Any] = {
        "imageMetadata": {
            "model": {"canonicalName": f"example/{name}", "recommendedDeployments": deployments}
        }
    }
    if with_conditions:
        status["observedGeneration"] = 1
        status["status"] = "Progressing"
        status["conditions"] = [
            {
                "type": "MetadataExtracted",
                "status": "True",
                "reason": "MetadataExtracted",
                "message": "discovered by the test",
                "lastTransitionTime": "2025-01-01T00:00:00Z",
            }
        ]
    kind = "aimmodel" if namespace else "aimclustermodel"
    kubectl(
        "patch",
        *kind_args(namespace, kind),
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def templates(kubectl: Kubectl, *, namespace: str = "", model: str = "") -> dict[str, Any]:
    kind = "aimservicetemplates" if namespace else "aimclusterservicetemplates"
    args = kind_args(namespace, kind)
    if model:
        args += ["-l", f"aim.silogen.ai/model={model}"]
    return {t["metadata"]["name"]: t for t in kubectl.json("get", *args)["items"]}


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return dict(c)
    return None


def get(kubectl: Kubectl, kind: str, name: str, namespace: str = "") -> dict[str, Any]:
    return dict(kubectl.json("get", *kind_args(namespace, kind), name))


def debug(kubectl: Kubectl, namespace: str = "") -> str:
    where = ["-n", namespace] if namespace else ["-A"]
    out = kubectl.run("get", "aim", *where, "-o", "wide", check=False).stdout
    out += kubectl.run("get", "aimclustermodels,aimclusterservicetemplates", check=False).stdout
    out += kubectl.run("get", "events", *where, check=False).stdout
    return out


@pytest.fixture
def cluster_name(namespace: str, kubectl: Kubectl) -> Iterator[str]:
    """A cluster-scoped model name unique to this test; the model is deleted afterwards."""
    name = f"{namespace}-llama"
    yield name
    kubectl.run("delete", "aimclustermodel", name, "--wait=false", check=False)


def wait_templates(
    kubectl: Kubectl, expected: set[str], *, namespace: str = "", model: str
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        found = templates(kubectl, namespace=namespace, model=model)
        return found if set(found) == expected else None

    try:
        result: dict[str, Any] = eventually(check, timeout=30, what=f"templates {expected}")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{debug(kubectl, namespace)}") from None
    return result


def wait_condition(
    kubectl: Kubectl, kind: str, name: str, namespace: str = "", **expected: str
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        c = condition(get(kubectl, kind, name, namespace), "TemplatesAutoGenerated")
        return c if c and all(c.get(k) == v for k, v in expected.items()) else None

    try:
        result: dict[str, Any] = eventually(check, timeout=30, what=f"{name} {expected}")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{debug(kubectl, namespace)}") from None
    return result


def wait_status(
    kubectl: Kubectl, kind: str, name: str, status: str, namespace: str = ""
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = get(kubectl, kind, name, namespace)
        return obj if (obj.get("status") or {}).get("status") == status else None

    try:
        result: dict[str, Any] = eventually(check, timeout=30, what=f"{kind} {name} {status}")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{debug(kubectl, namespace)}") from None
    return result


def resource_versions(kubectl: Kubectl, kind: str, name: str, namespace: str = "") -> set[str]:
    """``kind/name=rv`` of the model and every template it owns."""
    model = get(kubectl, kind, name, namespace)
    out = {f"{kind}/{name}={model['metadata']['resourceVersion']}"}
    for t_name, t in templates(kubectl, namespace=namespace, model=name).items():
        out.add(f"template/{t_name}={t['metadata']['resourceVersion']}")
    return out


# --------------------------------------------------------------------------------------------


def test_cluster_model_gets_four_cluster_templates_that_converge_and_stay_quiet(
    kubectl: Kubectl, start_manager: Callable[..., Manager], cluster_name: str
) -> None:
    start_manager(only=ONLY)
    kubectl.apply(model_obj(cluster_name))
    discover(kubectl, cluster_name, FOUR)

    expected = names_for(cluster_name, FOUR)
    assert len(expected) == 4
    found = wait_templates(kubectl, expected, model=cluster_name)
    model = get(kubectl, "aimclustermodel", cluster_name)
    for t in found.values():
        assert t["metadata"]["labels"]["aim.silogen.ai/auto-generated"] == "true"
        (owner,) = t["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
            "AIMClusterModel",
            cluster_name,
            model["metadata"]["uid"],
            True,
        )
        assert t["spec"]["modelName"] == cluster_name
    cond = wait_condition(kubectl, "aimclustermodel", cluster_name, status="True")
    assert cond["reason"] == "TemplatesAutoGenerated"

    for name in expected:
        t = wait_status(kubectl, "aimclusterservicetemplate", name, "Ready")
        profile = t["status"]["profile"]["metadata"]
        assert profile["gpu"] == "MI300X"
        assert profile["gpu_count"] == t["spec"]["gpuSelector"]["count"]
        assert (profile["metric"], profile["precision"]) == (
            t["spec"]["metric"],
            t["spec"]["precision"],
        )
        assert t["status"]["resolvedModel"]["uid"] == model["metadata"]["uid"]

    # No reconcile loop writes when nothing changed.
    time.sleep(1.0)  # let the last status writes' watch events settle
    before = resource_versions(kubectl, "aimclustermodel", cluster_name)
    time.sleep(QUIET_SECONDS)
    assert resource_versions(kubectl, "aimclustermodel", cluster_name) == before

    # Deleting the model garbage-collects its templates.
    kubectl("delete", "aimclustermodel", cluster_name, "--wait=true", "--timeout=30s")
    eventually(
        lambda: not (templates(kubectl, model=cluster_name).keys() & expected),
        timeout=60,
        what="garbage collection of the cluster templates",
    )


def test_namespaced_model_gets_namespaced_templates_with_its_credentials(
    kubectl: Kubectl, start_manager: Callable[..., Manager], namespace: str
) -> None:
    start_manager(only=ONLY)
    kubectl.apply(
        model_obj(
            "llama",
            namespace=namespace,
            imagePullSecrets=[{"name": "pull"}],
            serviceAccountName="runner",
        )
    )
    discover(kubectl, "llama", FOUR, namespace=namespace)

    expected = names_for("llama", FOUR)
    found = wait_templates(kubectl, expected, namespace=namespace, model="llama")
    for t in found.values():
        assert t["kind"] == "AIMServiceTemplate"
        assert t["metadata"]["ownerReferences"][0]["kind"] == "AIMModel"
        assert t["spec"]["imagePullSecrets"] == [{"name": "pull"}]
        assert t["spec"]["serviceAccountName"] == "runner"
    assert not templates(kubectl, model="llama")  # no cluster templates for a namespaced model
    wait_condition(kubectl, "aimmodel", "llama", namespace, status="True")
    for name in expected:
        wait_status(kubectl, "aimservicetemplate", name, "Ready", namespace)

    kubectl("delete", "aimmodel", "llama", "-n", namespace, "--wait=true", "--timeout=30s")
    eventually(
        lambda: not templates(kubectl, namespace=namespace),
        timeout=60,
        what="garbage collection of the namespaced templates",
    )


def test_new_image_with_other_deployments_prunes_and_adds(
    kubectl: Kubectl, start_manager: Callable[..., Manager], cluster_name: str
) -> None:
    start_manager(only=ONLY)
    kubectl.apply(model_obj(cluster_name))
    discover(kubectl, cluster_name, FOUR)
    wait_templates(kubectl, names_for(cluster_name, FOUR), model=cluster_name)
    kept = wait_templates(kubectl, names_for(cluster_name, FOUR), model=cluster_name)
    kept_uid = kept[template_name(cluster_name, RecommendedDeployment.model_validate(FOUR[0]))][
        "metadata"
    ]["uid"]

    # A new image; discovery would then publish its deployments.
    kubectl(
        "patch",
        "aimclustermodel",
        cluster_name,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"image": f"registry.example/{cluster_name}:2"}}),
    )
    new = [FOUR[0], {"gpuModel": "MI325X", "gpuCount": 2, "metric": "latency", "precision": "bf16"}]
    discover(kubectl, cluster_name, new, with_conditions=False)

    found = wait_templates(kubectl, names_for(cluster_name, new), model=cluster_name)
    kept_name = template_name(cluster_name, RecommendedDeployment.model_validate(FOUR[0]))
    assert found[kept_name]["metadata"]["uid"] == kept_uid  # kept, not recreated
    cond = wait_condition(kubectl, "aimclustermodel", cluster_name, status="True")
    assert "2 template(s)" in cond["message"]


def test_auto_create_templates_false_creates_none_and_says_so(
    kubectl: Kubectl, start_manager: Callable[..., Manager], namespace: str
) -> None:
    start_manager(only=ONLY)
    kubectl.apply(model_obj("llama", namespace=namespace, discovery={"autoCreateTemplates": False}))
    discover(kubectl, "llama", FOUR, namespace=namespace)
    cond = wait_condition(
        kubectl, "aimmodel", "llama", namespace, status="False", reason="AutoCreationDisabled"
    )
    assert "autoCreateTemplates" in cond["message"]
    time.sleep(1.0)
    assert templates(kubectl, namespace=namespace) == {}


def test_empty_deployment_list_yields_no_recommended_templates(
    kubectl: Kubectl, start_manager: Callable[..., Manager], namespace: str
) -> None:
    start_manager(only=ONLY)
    kubectl.apply(model_obj("empty", namespace=namespace))
    discover(kubectl, "empty", [], namespace=namespace)
    wait_condition(
        kubectl, "aimmodel", "empty", namespace, status="False", reason="NoRecommendedTemplates"
    )
    assert templates(kubectl, namespace=namespace) == {}
    # Events are written by the recorder's sender thread, a moment after the status.
    eventually(
        lambda: "NoRecommendedTemplates" in kubectl("get", "events", "-n", namespace),
        timeout=10,
        what="a NoRecommendedTemplates event",
    )


def manual_template(name: str, model: str, *, namespace: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"team": "ml"}}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": API,
        "kind": "AIMServiceTemplate" if namespace else "AIMClusterServiceTemplate",
        "metadata": meta,
        "spec": {
            "modelName": model,
            "metric": "latency",
            "precision": "fp8",
            "gpuSelector": {"model": "MI300X", "count": 1},
        },
    }


def test_manual_template_for_a_missing_model_becomes_ready_once_the_model_exists(
    kubectl: Kubectl, start_manager: Callable[..., Manager], namespace: str
) -> None:
    start_manager(only=ONLY)
    kubectl.apply(manual_template("mine", "later", namespace=namespace))
    t = wait_status(kubectl, "aimservicetemplate", "mine", "Degraded", namespace)
    ready = condition(t, "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "ModelNotFound")
    assert 'AIMModel "later"' in ready["message"]
    assert 'AIMClusterModel "later"' in ready["message"]

    kubectl.apply(model_obj("later", namespace=namespace))
    discover(kubectl, "later", FOUR[:1], namespace=namespace)
    t = wait_status(kubectl, "aimservicetemplate", "mine", "Ready", namespace)
    assert t["status"]["resolvedModel"]["kind"] == "AIMModel"
    assert t["status"]["profile"]["metadata"]["gpu_count"] == 1
    events = eventually(
        lambda: (e := kubectl("get", "events", "-n", namespace)) and "TemplateReady" in e and e,
        timeout=10,
        what="a TemplateReady event",
    )
    assert "ModelNotFound" in events


def test_templates_created_before_their_model_converge(
    kubectl: Kubectl, start_manager: Callable[..., Manager], namespace: str, cluster_name: str
) -> None:
    # A cluster template and a namespaced template, both for a cluster model not created yet,
    # and one that happens to carry the name generation will want.
    clash = template_name(cluster_name, RecommendedDeployment.model_validate(FOUR[0]))
    early = [
        manual_template("early-cluster", cluster_name),
        manual_template("early-ns", cluster_name, namespace=namespace),
        manual_template(clash, cluster_name),
    ]
    kubectl.apply(early)
    start_manager(only=ONLY)
    wait_status(kubectl, "aimclusterservicetemplate", "early-cluster", "Degraded")
    wait_status(kubectl, "aimservicetemplate", "early-ns", "Degraded", namespace)

    kubectl.apply(model_obj(cluster_name))
    discover(kubectl, cluster_name, FOUR)

    auto = wait_templates(kubectl, names_for(cluster_name, FOUR) - {clash}, model=cluster_name)
    assert clash not in auto
    for name in ("early-cluster", clash, *auto):
        wait_status(kubectl, "aimclusterservicetemplate", name, "Ready")
    t = wait_status(kubectl, "aimservicetemplate", "early-ns", "Ready", namespace)
    assert t["status"]["resolvedModel"]["kind"] == "AIMClusterModel"
    # The hand-written template with the generated name is left as its author wrote it.
    mine = get(kubectl, "aimclusterservicetemplate", clash)
    assert mine["metadata"].get("ownerReferences") is None
    assert mine["metadata"]["labels"] == {"team": "ml"}
    cond = wait_condition(kubectl, "aimclustermodel", cluster_name, status="True")
    assert clash in cond["message"]
    kubectl.run("delete", "aimclusterservicetemplate", "early-cluster", clash, check=False)


def test_edits_of_owned_fields_are_reverted_and_deleted_templates_recreated(
    kubectl: Kubectl, start_manager: Callable[..., Manager], namespace: str
) -> None:
    start_manager(only=ONLY)
    kubectl.apply(
        model_obj(
            "llama",
            namespace=namespace,
            imagePullSecrets=[{"name": "pull"}],
            serviceAccountName="runner",
        )
    )
    discover(kubectl, "llama", FOUR[:2], namespace=namespace)
    first, second = sorted(
        wait_templates(kubectl, names_for("llama", FOUR[:2]), namespace=namespace, model="llama")
    )
    edit = {
        "metadata": {"labels": {"aim.silogen.ai/model": "hijacked"}},
        "spec": {"imagePullSecrets": [{"name": "other"}], "serviceAccountName": "intruder"},
    }
    kubectl(
        "patch",
        "aimservicetemplate",
        first,
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps(edit),
    )
    kubectl("delete", "aimservicetemplate", second, "-n", namespace)

    def reverted() -> bool:
        t = get(kubectl, "aimservicetemplate", first, namespace)
        return (
            t["metadata"]["labels"].get("aim.silogen.ai/model") == "llama"
            and t["spec"].get("imagePullSecrets") == [{"name": "pull"}]
            and t["spec"].get("serviceAccountName") == "runner"
        )

    eventually(reverted, timeout=30, what=f"edits of {first} reverted")
    wait_templates(kubectl, {first, second}, namespace=namespace, model="llama")


def test_disabling_discovery_later_leaves_templates_in_place(
    kubectl: Kubectl, start_manager: Callable[..., Manager], namespace: str
) -> None:
    start_manager(only=ONLY)
    kubectl.apply(model_obj("llama", namespace=namespace))
    discover(kubectl, "llama", FOUR, namespace=namespace)
    before = wait_templates(kubectl, names_for("llama", FOUR), namespace=namespace, model="llama")
    wait_condition(kubectl, "aimmodel", "llama", namespace, status="True")

    kubectl(
        "patch",
        "aimmodel",
        "llama",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"discovery": {"enabled": False}}}),
    )
    discover(kubectl, "llama", FOUR[:1], namespace=namespace, with_conditions=False)
    cond = wait_condition(kubectl, "aimmodel", "llama", namespace, status="True")
    time.sleep(2.0)
    after = templates(kubectl, namespace=namespace, model="llama")
    assert {n: t["metadata"]["uid"] for n, t in after.items()} == {
        n: t["metadata"]["uid"] for n, t in before.items()
    }
    assert cond["reason"] == "TemplatesAutoGenerated"


def test_end_to_end_discovery_of_a_sample_image_generates_ready_templates(
    kubectl: Kubectl,
    start_manager: Callable[..., Manager],
    cluster_name: str,
    registries: Any,
) -> None:
    """Every controller, inline discovery, the 'good' sample image (four deployments)."""
    start_manager(discovery_mode="inline")
    kubectl.apply({**model_obj(cluster_name), "spec": {"image": registries.refs["good"]}})

    model = wait_status(kubectl, "aimclustermodel", cluster_name, "Ready")
    deployments = model["status"]["imageMetadata"]["model"]["recommendedDeployments"]
    expected = names_for(cluster_name, deployments)
    assert len(expected) == 4
    wait_templates(kubectl, expected, model=cluster_name)
    for name in expected:
        wait_status(kubectl, "aimclusterservicetemplate", name, "Ready")
    cond = condition(get(kubectl, "aimclustermodel", cluster_name), "TemplatesAutoGenerated")
    assert cond is not None
    assert cond["status"] == "True"

    time.sleep(1.0)
    before = resource_versions(kubectl, "aimclustermodel", cluster_name)
    time.sleep(QUIET_SECONDS)
    assert resource_versions(kubectl, "aimclustermodel", cluster_name) == before
