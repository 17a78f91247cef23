"""TemplateReconciler: seed the caches, reconcile once, assert the exact API actions."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from aimctrl.api.v1alpha1.model import AIMClusterModel, AIMModel
from aimctrl.api.v1alpha1.runtimeconfig import AIMClusterRuntimeConfig, AIMRuntimeConfig
from aimctrl.api.v1alpha1.template import AIMClusterServiceTemplate, AIMServiceTemplate
from aimctrl.controllers.template import FIELD_MANAGER, TemplateReconciler, setup
from aimctrl.kube.resources import NODE
from aimctrl.machinery.reconcile import Request, Result
from aimctrl.testing.fakeclient import Action, FakeKubeClient, deliver, fake_context, queued, seed
from aimctrl.testing.fleet import amd_node, fleet_nodes

API = "aim.silogen.ai/v1alpha1"
DEPLOYMENTS = [
    {"gpuModel": "MI300X", "gpuCount": 1, "metric": "latency", "precision": "fp8"},
    {"gpuModel": "MI300X", "gpuCount": 8, "metric": "throughput", "precision": "fp16"},
]
EXTRACTED = {
    "type": "MetadataExtracted",
    "status": "True",
    "reason": "MetadataExtracted",
    "message": "",
    "lastTransitionTime": "2025-01-01T00:00:00Z",
}


def model(
    name: str = "llama",
    *,
    namespace: str = "",
    status: str = "Ready",
    conditions: list[dict[str, Any]] | None = None,
    reconciled: bool = True,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{name}-{namespace}", "generation": 1}
    if namespace:
        meta["namespace"] = namespace
    body: dict[str, Any] = {
        "apiVersion": API,
        "kind": "AIMModel" if namespace else "AIMClusterModel",
        "metadata": meta,
        "spec": {"image": "r/llama:1"},
    }
    if reconciled:
        body["status"] = {
            "observedGeneration": 1,
            "status": status,
            "conditions": [EXTRACTED] if conditions is None else conditions,
            "imageMetadata": {"model": {"recommendedDeployments": DEPLOYMENTS}},
        }
    return body


def template(
    name: str = "t1",
    *,
    namespace: str = "",
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{name}", "generation": 3}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": API,
        "kind": "AIMServiceTemplate" if namespace else "AIMClusterServiceTemplate",
        "metadata": meta,
        "spec": {"modelName": "llama", "metric": "throughput", "precision": "fp16", **(spec or {})},
        "status": status or {},
    }


def reconcile(
    *objs: tuple[Any, dict[str, Any]],
    request: Request,
    nodes: list[dict[str, Any]] | None = None,
) -> tuple[FakeKubeClient, Any, Result]:
    """Reconcile once on SPEC §8's mixed fleet (two 8-GPU MI300X nodes, …) unless ``nodes``."""
    client = FakeKubeClient()
    ctx = fake_context(client)
    seed(ctx, NODE, *(fleet_nodes() if nodes is None else nodes))
    for kind, obj in objs:
        seed(ctx, kind, obj)
    result = TemplateReconciler(ctx).reconcile(request)
    return client, ctx, result


def status_write(client: FakeKubeClient) -> Action:
    (write,) = [a for a in client.writes() if a.resource != "events"]
    assert write.verb == "apply_status"
    assert write.field_manager == FIELD_MANAGER == "aimctrl-template"
    assert write.force
    return write


def conditions(action: Action) -> dict[str, tuple[str, str, str]]:
    assert action.body is not None
    return {
        c["type"]: (c["status"], c["reason"], c["message"])
        for c in action.body["status"]["conditions"]
    }


def test_cluster_template_of_a_discovered_model_becomes_ready_with_profile() -> None:
    client, ctx, result = reconcile(
        (AIMClusterModel.RESOURCE, model()),
        (AIMClusterServiceTemplate.RESOURCE, template()),
        request=Request("", "t1"),
    )
    assert result == Result()
    write = status_write(client)
    assert (write.resource, write.name, write.namespace) == ("aimclusterservicetemplates", "t1", "")
    assert write.body is not None
    assert write.body["metadata"] == {"name": "t1"}
    status = write.body["status"]
    assert status["status"] == "Ready"
    assert status["observedGeneration"] == 3
    # gpu and gpu_count come from the matching recommended deployment (8x MI300X thr fp16).
    assert status["profile"] == {
        "metadata": {"gpu": "MI300X", "gpu_count": 8, "metric": "throughput", "precision": "fp16"}
    }
    assert status["resolvedModel"] == {
        "name": "llama",
        "scope": "Cluster",
        "kind": "AIMClusterModel",
        "uid": "uid-llama-",
    }
    assert "resolvedRuntimeConfig" not in status  # no default config exists
    conds = conditions(write)
    assert conds["Ready"][:2] == ("True", "Ready")
    assert conds["ModelResolved"][:2] == ("True", "ModelResolved")
    assert conds["RuntimeResolved"][:2] == ("False", "DefaultRuntimeConfigMissing")
    # A template's first Ready is in its status; only a recovery gets an Event.
    assert ("/t1", "Normal", "TemplateReady") not in ctx.recorder.sent


def test_gpu_selector_wins_over_the_recommended_deployment() -> None:
    t = template(spec={"gpuSelector": {"model": "MI325X", "count": 2}})
    client, _, _ = reconcile(
        (AIMClusterModel.RESOURCE, model()),
        (AIMClusterServiceTemplate.RESOURCE, t),
        request=Request("", "t1"),
    )
    body = status_write(client).body
    assert body is not None
    assert body["status"]["profile"]["metadata"]["gpu"] == "MI325X"
    assert body["status"]["profile"]["metadata"]["gpu_count"] == 2


def test_namespaced_template_prefers_the_namespaced_model_and_merges_runtime_config() -> None:
    ns_config = {
        "apiVersion": API,
        "kind": "AIMRuntimeConfig",
        "metadata": {"name": "default", "namespace": "team", "uid": "rc-ns"},
        "spec": {},
    }
    cl_config = {
        "apiVersion": API,
        "kind": "AIMClusterRuntimeConfig",
        "metadata": {"name": "default", "uid": "rc-cl"},
        "spec": {},
    }
    client, _, _ = reconcile(
        (AIMClusterModel.RESOURCE, model()),
        (AIMModel.RESOURCE, model(namespace="team")),
        (AIMRuntimeConfig.RESOURCE, ns_config),
        (AIMClusterRuntimeConfig.RESOURCE, cl_config),
        (AIMServiceTemplate.RESOURCE, template(namespace="team")),
        request=Request("team", "t1"),
    )
    write = status_write(client)
    assert (write.resource, write.namespace) == ("aimservicetemplates", "team")
    assert write.body is not None
    status = write.body["status"]
    assert status["resolvedModel"]["kind"] == "AIMModel"
    assert status["resolvedModel"]["namespace"] == "team"
    assert status["resolvedRuntimeConfig"]["scope"] == "Merged"


def test_namespaced_template_falls_back_to_the_cluster_model() -> None:
    client, _, _ = reconcile(
        (AIMClusterModel.RESOURCE, model()),
        (AIMServiceTemplate.RESOURCE, template(namespace="team")),
        request=Request("team", "t1"),
    )
    body = status_write(client).body
    assert body is not None
    assert body["status"]["resolvedModel"]["kind"] == "AIMClusterModel"
    assert body["status"]["status"] == "Ready"


def test_cluster_template_ignores_namespaced_models() -> None:
    client, ctx, _ = reconcile(
        (AIMModel.RESOURCE, model(namespace="team")),
        (AIMClusterServiceTemplate.RESOURCE, template()),
        request=Request("", "t1"),
    )
    write = status_write(client)
    assert write.body is not None
    assert write.body["status"]["status"] == "Degraded"
    assert "resolvedModel" not in write.body["status"]
    ready = conditions(write)["Ready"]
    assert ready == ("False", "ModelNotFound", 'model not found: no AIMClusterModel "llama"')
    assert ("/t1", "Warning", "ModelNotFound") in ctx.recorder.sent


def test_missing_model_message_names_both_places_for_namespaced_template() -> None:
    client, _, _ = reconcile(
        (AIMServiceTemplate.RESOURCE, template(namespace="team")), request=Request("team", "t1")
    )
    ready = conditions(status_write(client))["Ready"]
    assert ready[1] == "ModelNotFound"
    assert 'no AIMModel "llama" in namespace "team"' in ready[2]
    assert 'no AIMClusterModel "llama"' in ready[2]


def test_failed_model_degrades_the_template_with_its_reason() -> None:
    failed = model(
        status="Failed",
        conditions=[
            {
                "type": "Ready",
                "status": "False",
                "reason": "ImageNotFound",
                "message": "image r/llama:1 not found",
                "lastTransitionTime": "2025-01-01T00:00:00Z",
            }
        ],
    )
    client, _, _ = reconcile(
        (AIMClusterModel.RESOURCE, failed),
        (AIMClusterServiceTemplate.RESOURCE, template()),
        request=Request("", "t1"),
    )
    write = status_write(client)
    assert write.body is not None
    assert write.body["status"]["status"] == "Degraded"
    ready = conditions(write)["Ready"]
    assert ready[:2] == ("False", "ModelFailed")
    assert ready[2] == "AIMClusterModel llama has failed: image r/llama:1 not found"


@pytest.mark.parametrize(
    ("model_obj", "expected"),
    [
        (model(reconciled=False), "Pending"),
        (
            model(
                status="Progressing",
                conditions=[{**EXTRACTED, "status": "False", "reason": "DiscoveryRunning"}],
            ),
            "Progressing",
        ),
        (
            model(
                status="Progressing",
                conditions=[{**EXTRACTED, "status": "Unknown", "reason": "DiscoveryRetrying"}],
            ),
            "Progressing",
        ),
        # Discovery done, templates still coming: the model's own Progressing does not matter.
        (model(status="Progressing"), "Ready"),
        (model(status="Degraded"), "Ready"),
        # Discovery disabled: the model is usable as is.
        (
            model(conditions=[{**EXTRACTED, "status": "False", "reason": "DiscoveryDisabled"}]),
            "Ready",
        ),
    ],
)
def test_template_status_follows_the_models_discovery(
    model_obj: dict[str, Any], expected: str
) -> None:
    client, _, _ = reconcile(
        (AIMClusterModel.RESOURCE, model_obj),
        (AIMClusterServiceTemplate.RESOURCE, template()),
        request=Request("", "t1"),
    )
    body = status_write(client).body
    assert body is not None
    assert body["status"]["status"] == expected
    if expected != "Ready":
        ready = conditions(status_write(client))["Ready"]
        assert ready[:2] == ("False", "ModelNotReady")


def test_explicit_runtime_config_missing_degrades_the_template() -> None:
    client, _, _ = reconcile(
        (AIMClusterModel.RESOURCE, model()),
        (AIMClusterServiceTemplate.RESOURCE, template(spec={"runtimeConfigName": "special"})),
        request=Request("", "t1"),
    )
    write = status_write(client)
    assert write.body is not None
    assert write.body["status"]["status"] == "Degraded"
    assert conditions(write)["Ready"][1] == "RuntimeConfigMissing"
    assert conditions(write)["RuntimeResolved"][:2] == ("False", "RuntimeConfigMissing")


def test_unchanged_status_is_not_written_again() -> None:
    first, _, _ = reconcile(
        (AIMClusterModel.RESOURCE, model()),
        (AIMClusterServiceTemplate.RESOURCE, template()),
        request=Request("", "t1"),
    )
    body = status_write(first).body
    assert body is not None
    converged = template(status=copy.deepcopy(body["status"]))
    client, ctx, _ = reconcile(
        (AIMClusterModel.RESOURCE, model()),
        (AIMClusterServiceTemplate.RESOURCE, converged),
        request=Request("", "t1"),
    )
    assert client.writes() == []
    assert ctx.recorder.sent == []


def test_recovery_keeps_transition_time_of_unflipped_conditions() -> None:
    degraded, _, _ = reconcile(
        (AIMClusterServiceTemplate.RESOURCE, template()), request=Request("", "t1")
    )
    body = status_write(degraded).body
    assert body is not None
    old_status = copy.deepcopy(body["status"])
    for c in old_status["conditions"]:
        c["lastTransitionTime"] = "2024-06-01T00:00:00Z"
    client, ctx, _ = reconcile(
        (AIMClusterModel.RESOURCE, model()),
        (AIMClusterServiceTemplate.RESOURCE, template(status=old_status)),
        request=Request("", "t1"),
    )
    write = status_write(client)
    assert write.body is not None
    times = {c["type"]: c["lastTransitionTime"] for c in write.body["status"]["conditions"]}
    assert times["RuntimeResolved"] == "2024-06-01T00:00:00Z"  # unchanged status
    assert times["Ready"] != "2024-06-01T00:00:00Z"  # flipped to True
    assert write.body["status"]["status"] == "Ready"
    assert ctx.recorder.sent == [("/t1", "Normal", "TemplateReady")]


def test_missing_template_does_nothing() -> None:
    client, _, result = reconcile(request=Request("team", "nope"))
    assert (client.actions, result) == ([], Result())


def test_setup_maps_a_model_to_the_templates_naming_it() -> None:
    ctx = fake_context()
    (controller,) = setup(ctx)
    seed(
        ctx,
        AIMServiceTemplate.RESOURCE,
        template("a", namespace="team"),
        template("b", namespace="other"),
        template("c", namespace="team", spec={"modelName": "different"}),
    )
    seed(ctx, AIMClusterServiceTemplate.RESOURCE, template("d"))

    deliver(ctx, AIMModel.RESOURCE, model(namespace="team"))
    assert queued(controller) == {Request("team", "a")}
    # A cluster model can back cluster templates and namespaced templates of any namespace.
    deliver(ctx, AIMClusterModel.RESOURCE, model())
    assert queued(controller) == {Request("team", "a"), Request("other", "b"), Request("", "d")}


def test_setup_maps_a_runtime_config_to_the_templates_naming_it() -> None:
    ctx = fake_context()
    (controller,) = setup(ctx)
    seed(
        ctx,
        AIMServiceTemplate.RESOURCE,
        template("a", namespace="team"),
        template("b", namespace="team", spec={"runtimeConfigName": "special"}),
    )
    config = {
        "apiVersion": API,
        "kind": "AIMRuntimeConfig",
        "metadata": {"name": "special", "namespace": "team"},
    }
    deliver(ctx, AIMRuntimeConfig.RESOURCE, config)
    assert queued(controller) == {Request("team", "b")}


def test_a_second_reconcile_from_a_cache_behind_its_own_write_does_not_write_again() -> None:
    client = FakeKubeClient()
    ctx = fake_context(client)
    t = template()
    t["metadata"]["resourceVersion"] = "5"
    seed(ctx, AIMClusterModel.RESOURCE, model())
    seed(ctx, AIMClusterServiceTemplate.RESOURCE, t)
    reconciler = TemplateReconciler(ctx)
    reconciler.reconcile(Request("", "t1"))
    ctx.clock.step(3)  # a later second: only lastTransitionTime would differ
    reconciler.reconcile(Request("", "t1"))  # the cache still shows resourceVersion 5
    assert [a.verb for a in client.writes() if a.resource != "events"] == ["apply_status"]

    # The model fails: a different status is due, stale cache or not.
    failed = model()
    failed["status"]["status"] = "Failed"
    seed(ctx, AIMClusterModel.RESOURCE, failed)
    reconciler.reconcile(Request("", "t1"))
    writes = [a for a in client.writes() if a.resource != "events"]
    assert len(writes) == 2
    assert writes[1].body is not None
    assert writes[1].body["status"]["status"] == "Degraded"


def _with_rv(obj: dict[str, Any], rv: str) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["metadata"]["resourceVersion"] = rv
    return out


def _template_status_for(m: dict[str, Any]) -> dict[str, Any] | None:
    client, _, _ = reconcile(
        (AIMClusterModel.RESOURCE, m),
        (AIMClusterServiceTemplate.RESOURCE, template()),
        request=Request("", "t1"),
    )
    writes = [a for a in client.writes() if a.resource != "events"]
    if not writes:
        return None
    body = copy.deepcopy(writes[0].body)
    assert body is not None
    for c in body["status"]["conditions"]:
        c.pop("lastTransitionTime", None)
    return body["status"]  # type: ignore[no-any-return]


def _progressing_model() -> dict[str, Any]:
    m = model(status="Progressing")
    m["status"]["conditions"].append(
        {"type": "Ready", "status": "False", "reason": "TemplatesProgressing", "message": "wait"}
    )
    return m


def _outside_the_view(m: dict[str, Any]) -> dict[str, Any]:
    """The model's own summary moving on, and another controller's condition."""
    out = copy.deepcopy(m)
    out["status"]["status"] = "Ready"
    out["status"]["conditions"] = [
        EXTRACTED,
        {"type": "Ready", "status": "True", "reason": "AllTemplatesReady", "message": "all"},
        {"type": "TemplatesAutoGenerated", "status": "True", "reason": "x", "message": "y"},
    ]
    out["status"]["resolvedRuntimeConfig"] = {"name": "default"}
    return out


def _inside_the_view() -> list[dict[str, Any]]:
    failed = _progressing_model()
    failed["status"]["status"] = "Failed"
    other_deployments = _progressing_model()
    other_deployments["status"]["imageMetadata"]["model"]["recommendedDeployments"] = [
        {**DEPLOYMENTS[1], "gpuCount": 4}
    ]
    discovering = _progressing_model()
    discovering["status"]["conditions"][0] = {**EXTRACTED, "status": "Unknown"}
    recreated = _progressing_model()
    recreated["metadata"]["uid"] = "another-uid"
    return [failed, other_deployments, discovering, recreated]


def test_a_model_update_outside_its_view_does_not_wake_its_templates() -> None:
    ctx = fake_context()
    (controller,) = setup(ctx)
    seed(ctx, AIMClusterServiceTemplate.RESOURCE, template())
    old = _progressing_model()
    new = _outside_the_view(old)
    deliver(ctx, AIMClusterModel.RESOURCE, _with_rv(new, "2"), old=_with_rv(old, "1"))
    assert queued(controller) == set()
    # ...because the template's status does not depend on it: the same status either way.
    assert _template_status_for(old) == _template_status_for(new) is not None
    # A replay of the same version (a resync) always passes.
    deliver(ctx, AIMClusterModel.RESOURCE, _with_rv(new, "2"), old=_with_rv(new, "2"))
    assert queued(controller) == {Request("", "t1")}


@pytest.mark.parametrize("index", range(4))
def test_a_model_update_inside_its_view_wakes_its_templates(index: int) -> None:
    ctx = fake_context()
    (controller,) = setup(ctx)
    seed(ctx, AIMClusterServiceTemplate.RESOURCE, template())
    old = _progressing_model()
    new = _inside_the_view()[index]
    deliver(ctx, AIMClusterModel.RESOURCE, _with_rv(new, "2"), old=_with_rv(old, "1"))
    assert queued(controller) == {Request("", "t1")}
    assert _template_status_for(old) != _template_status_for(new)


# -- GPU availability (SPEC §8) ------------------------------------------------------------------

SPEC_FLEET_HAS = "the cluster has MI210 (4 per node), MI300X (8 per node), MI325X (8 per node)"


def _gpu_template(name: str, gpu: str, count: int, **extra: Any) -> dict[str, Any]:
    return template(name, spec={"gpuSelector": {"model": gpu, "count": count, **extra}})


@pytest.mark.parametrize(
    ("gpu", "count", "status", "reason", "message"),
    [
        ("MI300X", 8, "Ready", "GPUAvailable", f"needs 8 x MI300X; {SPEC_FLEET_HAS}"),
        ("MI325X", 1, "Ready", "GPUAvailable", f"needs 1 x MI325X; {SPEC_FLEET_HAS}"),
        ("MI355X", 8, "NotAvailable", "GPUNotInCluster", f"needs 8 x MI355X; {SPEC_FLEET_HAS}"),
        ("MI210", 8, "NotAvailable", "NotEnoughGPUsPerNode", f"needs 8 x MI210; {SPEC_FLEET_HAS}"),
    ],
)
def test_template_availability_on_the_mixed_fleet(
    gpu: str, count: int, status: str, reason: str, message: str
) -> None:
    client, _, _ = reconcile(
        (AIMClusterModel.RESOURCE, model()),
        (AIMClusterServiceTemplate.RESOURCE, _gpu_template("t1", gpu, count)),
        request=Request("", "t1"),
    )
    write = status_write(client)
    assert write.body is not None
    assert write.body["status"]["status"] == status
    available = "True" if status == "Ready" else "False"
    assert conditions(write)["GPUAvailable"] == (available, reason, message)
    if status == "NotAvailable":
        assert conditions(write)["Ready"] == ("False", reason, message)


def test_a_failed_model_wins_over_missing_gpus() -> None:
    client, _, _ = reconcile(
        (AIMClusterModel.RESOURCE, model(status="Failed")),
        (AIMClusterServiceTemplate.RESOURCE, _gpu_template("t1", "MI355X", 8)),
        request=Request("", "t1"),
    )
    write = status_write(client)
    assert write.body is not None
    assert write.body["status"]["status"] == "Degraded"
    assert conditions(write)["Ready"][1] == "ModelFailed"
    assert conditions(write)["GPUAvailable"][:2] == ("False", "GPUNotInCluster")


def test_a_gpu_resource_aimctrl_does_not_inventory_is_not_checked() -> None:
    t = _gpu_template("t1", "H100", 8, resourceName="nvidia.com/gpu")
    client, _, _ = reconcile(
        (AIMClusterModel.RESOURCE, model()),
        (AIMClusterServiceTemplate.RESOURCE, t),
        request=Request("", "t1"),
    )
    write = status_write(client)
    assert write.body is not None
    assert write.body["status"]["status"] == "Ready"
    assert conditions(write)["GPUAvailable"][:2] == ("True", "GPUNotChecked")


def test_becoming_not_available_after_being_ready_is_an_event() -> None:
    first, _, _ = reconcile(
        (AIMClusterModel.RESOURCE, model()),
        (AIMClusterServiceTemplate.RESOURCE, _gpu_template("t1", "MI300X", 8)),
        request=Request("", "t1"),
    )
    body = status_write(first).body
    assert body is not None
    was_ready = _gpu_template("t1", "MI300X", 8)
    was_ready["status"] = copy.deepcopy(body["status"])
    client, ctx, _ = reconcile(
        (AIMClusterModel.RESOURCE, model()),
        (AIMClusterServiceTemplate.RESOURCE, was_ready),
        request=Request("", "t1"),
        nodes=[amd_node("only", "MI325X")],  # the MI300X nodes are gone
    )
    write = status_write(client)
    assert write.body is not None
    assert write.body["status"]["status"] == "NotAvailable"
    assert ctx.recorder.sent == [("/t1", "Normal", "TemplateNotAvailable")]


def test_a_fleet_change_wakes_only_the_templates_it_can_affect() -> None:
    ctx = fake_context()
    (controller,) = setup(ctx)
    unavailable = _gpu_template("mi355x-8", "MI355X", 8)
    unavailable["status"] = {
        "conditions": [{"type": "GPUAvailable", "status": "False", "reason": "GPUNotInCluster"}]
    }
    seed(
        ctx,
        AIMClusterServiceTemplate.RESOURCE,
        _gpu_template("mi300x-1", "MI300X", 1),
        _gpu_template("mi325x-1", "MI325X", 1),
        unavailable,
        template("no-gpu"),
    )
    seed(
        ctx,
        AIMServiceTemplate.RESOURCE,
        template(
            "ns-mi210", namespace="team", spec={"gpuSelector": {"model": "MI210", "count": 1}}
        ),
    )
    # A second MI300X node with 8 GPUs: the fleet's shape does not move; nobody is woken.
    for node in fleet_nodes():
        deliver(ctx, NODE, node)
    queued(controller)
    deliver(ctx, NODE, amd_node("kwok-mi300x-9", "MI300X"))
    assert queued(controller) == set()
    # The only MI325X node leaves: the MI325X templates, those naming no GPU model, and those
    # not available (their messages describe the fleet) are woken; MI300X and MI210 ones not.
    deliver(ctx, NODE, amd_node("kwok-mi325x-beta-0", "MI325X", form="beta"), deleted=True)
    assert queued(controller) == {
        Request("", "mi325x-1"),
        Request("", "no-gpu"),
        Request("", "mi355x-8"),
    }
