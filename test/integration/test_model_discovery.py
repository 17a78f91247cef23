"""Model discovery end to end: real apiserver, Job controller and registries, both modes.

In Job mode the harness's pod runner plays the kubelet for the discovery pods (it runs the real
``aimctrl discover`` with the pod's arguments and mounted secrets); in inline mode the manager
calls discovery itself. Every test runs in both modes and expects the same status.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aimctrl.manager import Manager
from aimctrl.testing.helpers import Kubectl, eventually

pytestmark = pytest.mark.integration

API = "aim.silogen.ai/v1alpha1"
TIMINGS: dict[str, list[float]] = {"job": [], "inline": []}


@pytest.fixture(params=["job", "inline"])
def mode(request: pytest.FixtureRequest) -> str:
    if request.param == "job":
        request.getfixturevalue("pod_runner")
    return str(request.param)


@pytest.fixture
def manager(start_manager: Callable[..., Manager], mode: str) -> Manager:
    return start_manager(only=("model",), discovery_mode=mode)


@pytest.fixture
def cluster_names(kubectl: Kubectl) -> Iterator[Callable[[str], str]]:
    """Unique names for cluster-scoped objects, deleted after the test."""
    made: list[tuple[str, str]] = []

    def make(kind: str) -> str:
        name = f"c-{uuid.uuid4().hex[:8]}"
        made.append((kind, name))
        return name

    yield make
    for kind, name in made:
        kubectl.run("delete", kind, name, "--wait=false", "--ignore-not-found", check=False)


def _model(name: str, image: str, *, namespace: str | None = None, **spec: Any) -> dict[str, Any]:
    discovery = {"autoCreateTemplates": False, **spec.pop("discovery", {})}
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": API,
        "kind": "AIMModel" if namespace else "AIMClusterModel",
        "metadata": meta,
        "spec": {"image": image, "discovery": discovery, **spec},
    }


def _ns_args(namespace: str | None) -> list[str]:
    return ["-n", namespace] if namespace else []


def _kind(namespace: str | None) -> str:
    return "aimmodel" if namespace else "aimclustermodel"


def _get(kubectl: Kubectl, name: str, namespace: str | None = None) -> dict[str, Any]:
    return kubectl.json("get", _kind(namespace), name, *_ns_args(namespace))  # type: ignore[no-any-return]


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or ():
        if c["type"] == type_:
            return c  # type: ignore[no-any-return]
    return {}


def _describe(kubectl: Kubectl, name: str, namespace: str | None) -> str:
    out = kubectl.run("describe", _kind(namespace), name, *_ns_args(namespace), check=False).stdout
    jobs = kubectl.run(
        "get", "jobs,pods", "-A", "-l", "aim.silogen.ai/discovery-job", "-o", "wide", check=False
    )
    return out + "\n" + jobs.stdout


def _wait_status(
    kubectl: Kubectl,
    name: str,
    status: str,
    *,
    namespace: str | None = None,
    timeout: float = 60.0,
    check: Callable[[dict[str, Any]], bool] = lambda _: True,
) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        obj = _get(kubectl, name, namespace)
        if (obj.get("status") or {}).get("status") == status and check(obj):
            return obj
        return None

    try:
        return eventually(ready, timeout=timeout, what=f"{name} {status}")  # type: ignore[no-any-return]
    except AssertionError as e:
        raise AssertionError(f"{e}\n{_describe(kubectl, name, namespace)}") from None


def _jobs(kubectl: Kubectl, namespace: str, name: str) -> list[dict[str, Any]]:
    got = kubectl.json("get", "jobs", "-n", namespace, "--field-selector", f"metadata.name={name}")
    return list(got["items"])


def _pull_secret(kubectl: Kubectl, namespace: str, name: str, payload: bytes) -> None:
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": name, "namespace": namespace},
            "data": {".dockerconfigjson": base64.b64encode(payload).decode()},
        }
    )


def _bad_payload(registries: Any) -> bytes:
    good = json.loads(registries.env.dockerconfigjson())
    raw = base64.b64encode(f"{registries.env.user}:wrong-password".encode()).decode()
    return json.dumps({"auths": {h: {"auth": raw} for h in good["auths"]}}).encode()


# ------------------------------------------------------------------------------------ tests


def test_cluster_model_is_discovered_in_the_operator_namespace(
    kubectl: Kubectl,
    registries: Any,
    manager: Manager,
    mode: str,
    operator_namespace: str,
    cluster_names: Callable[[str], str],
) -> None:
    name = cluster_names("aimclustermodel")
    started = time.monotonic()
    kubectl.apply(_model(name, registries.refs["good"]))
    obj = _wait_status(
        kubectl,
        name,
        "Ready",
        check=lambda o: _condition(o, "MetadataExtracted").get("status") == "True",
    )
    TIMINGS[mode].append(time.monotonic() - started)
    print(f"\n[{mode}] model created -> MetadataExtracted True: {TIMINGS[mode][-1]:.2f}s")
    status = obj["status"]
    assert status["imageMetadata"]["model"]["canonicalName"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert len(status["imageMetadata"]["model"]["recommendedDeployments"]) == 4
    found = status["discoveredMetadata"]
    assert found["image"] == registries.refs["good"]
    assert found["digest"].startswith("sha256:")
    assert found["platform"] == "linux/amd64"
    assert found["gpu"] == {"models": ["MI300X"], "minCount": 1}
    assert _condition(obj, "Ready")["status"] == "True"
    assert _condition(obj, "RuntimeResolved")["reason"] == "DefaultRuntimeConfigMissing"
    if mode == "job":
        assert found["jobName"] == f"{name}-discovery"
        (job,) = _jobs(kubectl, operator_namespace, f"{name}-discovery")
        owner = job["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"]) == (
            "AIMClusterModel",
            name,
            True,
        )
    else:
        assert "jobName" not in found
    described = _describe(kubectl, name, None)
    for text in ("MetadataExtracted", "RuntimeResolved", "DiscoverySucceeded", "Ready"):
        assert text in described, described


def test_namespaced_model_is_discovered_in_its_namespace(
    kubectl: Kubectl, registries: Any, manager: Manager, mode: str, namespace: str
) -> None:
    kubectl.apply(_model("smol", registries.refs["aim-prefix"], namespace=namespace))
    obj = _wait_status(kubectl, "smol", "Ready", namespace=namespace)
    meta = obj["status"]["imageMetadata"]["model"]
    assert meta["canonicalName"] == "HuggingFaceTB/SmolLM2-135M"
    assert meta["recommendedDeployments"][0]["profileId"] == "mi300x-fp16-latency"
    if mode == "job":
        assert len(_jobs(kubectl, namespace, "smol-discovery")) == 1


def test_namespaced_model_overrides_cluster_model_of_the_same_name(
    kubectl: Kubectl,
    registries: Any,
    manager: Manager,
    namespace: str,
    cluster_names: Callable[[str], str],
) -> None:
    name = cluster_names("aimclustermodel")
    kubectl.apply(
        [
            _model(name, registries.refs["good"]),
            _model(name, registries.refs["aim-prefix"], namespace=namespace),
        ]
    )
    cluster = _wait_status(kubectl, name, "Ready")
    local = _wait_status(kubectl, name, "Ready", namespace=namespace)
    assert cluster["status"]["imageMetadata"]["model"]["canonicalName"].startswith("meta-llama")
    assert local["status"]["imageMetadata"]["model"]["canonicalName"].startswith("HuggingFaceTB")


def test_private_image_via_namespace_runtime_config(
    kubectl: Kubectl, registries: Any, manager: Manager, namespace: str
) -> None:
    _pull_secret(kubectl, namespace, "registry-creds", registries.env.dockerconfigjson())
    kubectl.apply(
        {
            "apiVersion": API,
            "kind": "AIMRuntimeConfig",
            "metadata": {"name": "private", "namespace": namespace},
            "spec": {"imagePullSecrets": [{"name": "registry-creds"}]},
        }
    )
    kubectl.apply(
        _model(
            "private", registries.refs["private"], namespace=namespace, runtimeConfigName="private"
        )
    )
    obj = _wait_status(kubectl, "private", "Ready", namespace=namespace)
    assert obj["status"]["resolvedRuntimeConfig"]["scope"] == "Namespace"
    assert obj["status"]["imageMetadata"]["model"]["canonicalName"].startswith("meta-llama")


def test_private_image_for_a_cluster_model_uses_operator_namespace_secret(
    kubectl: Kubectl,
    registries: Any,
    manager: Manager,
    operator_namespace: str,
    cluster_names: Callable[[str], str],
) -> None:
    config = cluster_names("aimclusterruntimeconfig")
    secret = f"{config}-creds"
    _pull_secret(kubectl, operator_namespace, secret, registries.env.dockerconfigjson())
    kubectl.apply(
        {
            "apiVersion": API,
            "kind": "AIMClusterRuntimeConfig",
            "metadata": {"name": config},
            "spec": {"imagePullSecrets": [{"name": secret}]},
        }
    )
    name = cluster_names("aimclustermodel")
    try:
        kubectl.apply(_model(name, registries.refs["private"], runtimeConfigName=config))
        obj = _wait_status(kubectl, name, "Ready")
        assert obj["status"]["resolvedRuntimeConfig"]["kind"] == "AIMClusterRuntimeConfig"
    finally:
        kubectl.run("delete", "secret", secret, "-n", operator_namespace, check=False)


def test_missing_pull_secret_blocks_discovery_until_it_appears(
    kubectl: Kubectl, registries: Any, manager: Manager, namespace: str
) -> None:
    kubectl.apply(
        _model(
            "late",
            registries.refs["private"],
            namespace=namespace,
            imagePullSecrets=[{"name": "late-creds"}],
        )
    )
    obj = _wait_status(kubectl, "late", "Failed", namespace=namespace)
    extracted = _condition(obj, "MetadataExtracted")
    assert extracted["reason"] == "PullSecretMissing"
    assert "late-creds" in extracted["message"]
    _pull_secret(kubectl, namespace, "late-creds", registries.env.dockerconfigjson())
    _wait_status(kubectl, "late", "Ready", namespace=namespace)


@pytest.mark.parametrize(
    ("sample", "reason", "fragment"),
    [
        ("missing-name", "MetadataExtractionFailed", "org.amd.silogen.model.canonicalName"),
        ("malformed", "MetadataExtractionFailed", "line 1, column"),
        (None, "ImageNotFound", "not-there"),
    ],
)
def test_discovery_failures_mark_the_model_failed_with_the_reason(
    kubectl: Kubectl,
    registries: Any,
    manager: Manager,
    namespace: str,
    sample: str | None,
    reason: str,
    fragment: str,
) -> None:
    image = registries.refs[sample] if sample else f"{registries.env.registry}/aim/not-there:1"
    kubectl.apply(_model("broken", image, namespace=namespace))
    obj = _wait_status(kubectl, "broken", "Failed", namespace=namespace)
    extracted = _condition(obj, "MetadataExtracted")
    assert (extracted["status"], extracted["reason"]) == ("False", reason)
    assert fragment in extracted["message"], extracted
    assert _condition(obj, "Ready")["status"] == "False"
    assert "DiscoveryFailed" in _describe(kubectl, "broken", namespace)


def test_wrong_password_is_an_auth_failure(
    kubectl: Kubectl, registries: Any, manager: Manager, namespace: str
) -> None:
    _pull_secret(kubectl, namespace, "bad-creds", _bad_payload(registries))
    kubectl.apply(
        _model(
            "denied",
            registries.refs["private"],
            namespace=namespace,
            imagePullSecrets=[{"name": "bad-creds"}],
        )
    )
    obj = _wait_status(kubectl, "denied", "Failed", namespace=namespace)
    assert _condition(obj, "MetadataExtracted")["reason"] == "ImagePullAuthFailure"


def test_python_dict_labels_keep_apostrophes(
    kubectl: Kubectl, registries: Any, manager: Manager, namespace: str
) -> None:
    kubectl.apply(_model("qwen", registries.refs["dict-style"], namespace=namespace))
    obj = _wait_status(kubectl, "qwen", "Ready", namespace=namespace)
    deployments = obj["status"]["imageMetadata"]["model"]["recommendedDeployments"]
    descriptions = [d["description"] for d in deployments]
    assert descriptions == ["Qwen's fastest single-GPU profile", "It's tuned for batch serving"]


def test_multi_arch_index_reads_the_amd64_image(
    kubectl: Kubectl, registries: Any, manager: Manager, namespace: str
) -> None:
    kubectl.apply(_model("multi", registries.refs["multiarch"], namespace=namespace))
    obj = _wait_status(kubectl, "multi", "Ready", namespace=namespace)
    assert obj["status"]["imageMetadata"]["model"]["canonicalName"] == "example/amd64-model"
    assert obj["status"]["discoveredMetadata"]["platform"] == "linux/amd64"


def test_changing_the_image_runs_a_new_discovery(
    kubectl: Kubectl, registries: Any, manager: Manager, namespace: str
) -> None:
    kubectl.apply(_model("moving", registries.refs["good"], namespace=namespace))
    _wait_status(kubectl, "moving", "Ready", namespace=namespace)
    kubectl.apply(_model("moving", registries.refs["aim-prefix"], namespace=namespace))
    obj = _wait_status(
        kubectl,
        "moving",
        "Ready",
        namespace=namespace,
        check=lambda o: o["status"]["discoveredMetadata"]["image"] == registries.refs["aim-prefix"],
    )
    assert obj["status"]["imageMetadata"]["model"]["canonicalName"] == "HuggingFaceTB/SmolLM2-135M"


def test_rediscover_annotation_runs_discovery_again(
    kubectl: Kubectl, registries: Any, manager: Manager, namespace: str
) -> None:
    kubectl.apply(_model("again", registries.refs["good"], namespace=namespace))
    first = _wait_status(kubectl, "again", "Ready", namespace=namespace)
    kubectl("annotate", "aimmodel", "again", "-n", namespace, "aim.silogen.ai/rediscover=1")
    obj = _wait_status(
        kubectl,
        "again",
        "Ready",
        namespace=namespace,
        check=lambda o: o["status"]["discoveredMetadata"].get("rediscoverToken") == "1",
    )
    assert (
        obj["status"]["discoveredMetadata"]["digest"]
        == first["status"]["discoveredMetadata"]["digest"]
    )


def test_discovery_disabled_leaves_templates_untouched_then_switched_on_runs(
    kubectl: Kubectl, registries: Any, manager: Manager, mode: str, namespace: str
) -> None:
    template = {
        "apiVersion": API,
        "kind": "AIMServiceTemplate",
        "metadata": {
            "name": "manual",
            "namespace": namespace,
            "labels": {"aim.silogen.ai/model": "quiet"},
        },
        "spec": {"modelName": "quiet", "metric": "latency", "precision": "fp8"},
    }
    kubectl.apply(template)
    before = kubectl.json("get", "aimservicetemplate", "manual", "-n", namespace)
    model = _model(
        "quiet",
        registries.refs["good"],
        namespace=namespace,
        discovery={"enabled": False, "autoCreateTemplates": True},
    )
    kubectl.apply(model)
    obj = _wait_status(kubectl, "quiet", "Ready", namespace=namespace)
    assert _condition(obj, "MetadataExtracted")["reason"] == "DiscoveryDisabled"
    assert "imageMetadata" not in obj["status"]
    time.sleep(1.0)  # give a wrongly started discovery the chance to show up
    assert _jobs(kubectl, namespace, "quiet-discovery") == []
    after = kubectl.json("get", "aimservicetemplate", "manual", "-n", namespace)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

    model["spec"]["discovery"] = {"enabled": True, "autoCreateTemplates": False}
    kubectl.apply(model)
    obj = _wait_status(
        kubectl,
        "quiet",
        "Ready",
        namespace=namespace,
        check=lambda o: _condition(o, "MetadataExtracted").get("status") == "True",
    )
    assert obj["status"]["imageMetadata"]["model"]["canonicalName"].startswith("meta-llama")


def test_missing_explicit_runtime_config_fails_then_recovers(
    kubectl: Kubectl, registries: Any, manager: Manager, namespace: str
) -> None:
    kubectl.apply(
        _model("needy", registries.refs["good"], namespace=namespace, runtimeConfigName="team")
    )
    obj = _wait_status(kubectl, "needy", "Failed", namespace=namespace)
    resolved = _condition(obj, "RuntimeResolved")
    assert (resolved["status"], resolved["reason"]) == ("False", "RuntimeConfigMissing")
    assert _condition(obj, "Ready")["reason"] == "RuntimeConfigMissing"
    generation = obj["metadata"]["generation"]
    assert "RuntimeConfigMissing" in _describe(kubectl, "needy", namespace)
    kubectl.apply(
        {
            "apiVersion": API,
            "kind": "AIMRuntimeConfig",
            "metadata": {"name": "team", "namespace": namespace},
            "spec": {},
        }
    )
    obj = _wait_status(kubectl, "needy", "Ready", namespace=namespace)
    assert _condition(obj, "RuntimeResolved")["reason"] == "RuntimeResolved"
    assert obj["metadata"]["generation"] == generation


def test_missing_implicit_default_runtime_config_is_only_a_warning(
    kubectl: Kubectl, registries: Any, manager: Manager, namespace: str
) -> None:
    kubectl.apply(_model("plain", registries.refs["good"], namespace=namespace))
    obj = _wait_status(kubectl, "plain", "Ready", namespace=namespace)
    resolved = _condition(obj, "RuntimeResolved")
    assert (resolved["status"], resolved["reason"]) == ("False", "DefaultRuntimeConfigMissing")


def test_report_discovery_timings() -> None:
    """Prints the measured model-created → MetadataExtracted times (run with -s to see them)."""
    for mode, values in TIMINGS.items():
        if values:
            print(f"\n[{mode}] discovery took {min(values):.2f}s..{max(values):.2f}s")
    assert all(v > 0 for values in TIMINGS.values() for v in values)
