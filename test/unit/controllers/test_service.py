"""ServiceReconciler: seed the caches, reconcile once, assert the exact API actions."""

from __future__ import annotations

import copy
from typing import Any

from aimctrl.api.v1alpha1.model import AIMClusterModel, AIMModel
from aimctrl.api.v1alpha1.runtimeconfig import AIMClusterRuntimeConfig, AIMRuntimeConfig
from aimctrl.api.v1alpha1.service import AIMService
from aimctrl.api.v1alpha1.template import AIMClusterServiceTemplate, AIMServiceTemplate
from aimctrl.controllers.context import Context
from aimctrl.controllers.service import (
    FIELD_MANAGER,
    INDEX_IMAGE,
    INDEX_MODEL,
    INDEX_RUNTIME_CONFIG,
    INDEX_TEMPLATE,
    ServiceReconciler,
    service_indexers,
    setup,
)
from aimctrl.controllers.workload import LABEL_SERVICE
from aimctrl.kube.errors import AlreadyExists
from aimctrl.kube.resources import DEPLOYMENT, NODE, SERVICE, Resource
from aimctrl.machinery.controller import Controller
from aimctrl.machinery.reconcile import Request, Result
from aimctrl.resolve.models import auto_model_name
from aimctrl.testing.fakeclient import FakeKubeClient, deliver, fake_context, seed
from aimctrl.testing.fleet import fleet_nodes

API = "aim.silogen.ai/v1alpha1"
NS = "team"
IMAGE = "registry.example/llama:1"
AUTO = auto_model_name(IMAGE)
REQ = Request(namespace=NS, name="svc")


def _ready(status: str = "True", reason: str = "Ready", message: str = "") -> dict[str, Any]:
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2025-01-01T00:00:00Z",
    }


def model(
    name: str = "llama",
    *,
    namespace: str = "",
    image: str = IMAGE,
    status: str = "Ready",
    message: str = "",
    **spec: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{name}"}
    if namespace:
        meta["namespace"] = namespace
    cond = _ready("True" if status == "Ready" else "False", status, message)
    return {
        "apiVersion": API,
        "kind": "AIMModel" if namespace else "AIMClusterModel",
        "metadata": meta,
        "spec": {"image": image, **spec},
        "status": {"status": status, "conditions": [cond]},
    }


def template(
    name: str = "llama-t",
    *,
    model_name: str = "llama",
    namespace: str = "",
    status: str = "Ready",
    gpu_count: int | None = 1,
    gpu: str | None = "MI300X",
    **spec: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{name}"}
    if namespace:
        meta["namespace"] = namespace
    profile = {k: v for k, v in (("gpu", gpu), ("gpu_count", gpu_count)) if v is not None}
    return {
        "apiVersion": API,
        "kind": "AIMServiceTemplate" if namespace else "AIMClusterServiceTemplate",
        "metadata": meta,
        "spec": {"modelName": model_name, **spec},
        "status": {"status": status, "conditions": [_ready()], "profile": {"metadata": profile}},
    }


def service(*, ref: str | None = "llama", image: str | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "AIMService",
        "metadata": {"name": "svc", "namespace": NS, "uid": "uid-svc", "generation": 1},
        "spec": {"model": {"ref": ref} if ref else {"image": image}, **spec},
    }


def runtime_config(name: str = "default", *, namespace: str = NS, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "AIMRuntimeConfig" if namespace else "AIMClusterRuntimeConfig",
        "metadata": {"name": name, "namespace": namespace} if namespace else {"name": name},
        "spec": spec,
    }


def _seed_workload(ctx: Context, res: Resource, *objs: dict[str, Any]) -> None:
    # The reconciler caches only its own workloads (label selector), in their own informer.
    indexer = ctx.informers.informer(res, label_selector=LABEL_SERVICE).indexer
    for obj in objs:
        indexer.add(copy.deepcopy(obj))


def make(
    *objs: dict[str, Any], nodes: list[dict[str, Any]] | None = None
) -> tuple[ServiceReconciler, Context, FakeKubeClient]:
    """A reconciler on seeded caches and SPEC §8's mixed fleet (unless ``nodes``)."""
    client = FakeKubeClient()
    ctx = fake_context(client)
    seed(ctx, NODE, *(fleet_nodes() if nodes is None else nodes))
    reconciler = ServiceReconciler(ctx)
    kinds = {
        "AIMService": AIMService.RESOURCE,
        "AIMModel": AIMModel.RESOURCE,
        "AIMClusterModel": AIMClusterModel.RESOURCE,
        "AIMServiceTemplate": AIMServiceTemplate.RESOURCE,
        "AIMClusterServiceTemplate": AIMClusterServiceTemplate.RESOURCE,
        "AIMRuntimeConfig": AIMRuntimeConfig.RESOURCE,
        "AIMClusterRuntimeConfig": AIMClusterRuntimeConfig.RESOURCE,
    }
    for obj in objs:
        if obj["kind"] == "Deployment":
            _seed_workload(ctx, DEPLOYMENT, obj)
        elif obj["kind"] == "Service":
            _seed_workload(ctx, SERVICE, obj)
        else:
            seed(ctx, kinds[obj["kind"]], obj)
    return reconciler, ctx, client


def writes(client: FakeKubeClient) -> list[tuple[str, str, str]]:
    """Writes other than events (those are checked through ``ctx.recorder.sent``)."""
    return [(a.verb, a.resource, a.name) for a in client.writes() if a.resource != "events"]


def applied_status(client: FakeKubeClient) -> dict[str, Any]:
    [action] = [a for a in client.writes() if a.verb == "apply_status"]
    assert action.field_manager == FIELD_MANAGER
    assert action.force is True
    assert action.body is not None
    return action.body["status"]  # type: ignore[no-any-return]


def applied(client: FakeKubeClient, resource: str) -> dict[str, Any]:
    [action] = [a for a in client.writes() if a.verb == "apply" and a.resource == resource]
    assert action.field_manager == FIELD_MANAGER
    assert action.body is not None
    return action.body


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in status["conditions"]}


def available(dep: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dep)
    out["metadata"]["generation"] = 1
    out["status"] = {
        "observedGeneration": 1,
        "replicas": 1,
        "availableReplicas": 1,
        "updatedReplicas": 1,
    }
    return out


# --------------------------------------------------------------------------- workload


def test_resolved_service_applies_service_and_deployment_then_status() -> None:
    r, ctx, client = make(service(), model(), template())
    assert r.reconcile(REQ) == Result()
    assert writes(client) == [
        ("apply", "services", "svc"),
        ("apply", "deployments", "svc"),
        ("apply_status", "aimservices", "svc"),
    ]
    status = applied_status(client)
    assert status["status"] == "Progressing"
    assert status["resolvedModel"] == {
        "name": "llama",
        "scope": "Cluster",
        "kind": "AIMClusterModel",
        "uid": "uid-llama",
    }
    assert status["resolvedTemplate"]["name"] == "llama-t"
    # SPEC §6: the GPU from the template's profile, CPU and memory defaults per GPU.
    assert status["resolvedResources"] == {
        "limits": {"amd.com/gpu": "1", "memory": "48Gi"},
        "requests": {"amd.com/gpu": "1", "cpu": "4", "memory": "32Gi"},
    }
    conds = conditions(status)
    assert conds["ModelResolved"][0] == "True"
    assert conds["TemplateResolved"][0] == "True"
    assert conds["WorkloadReady"][:2] == ("False", "WorkloadProgressing")
    assert conds["Ready"][2].startswith("waiting for Deployment svc:")
    assert ctx.recorder.sent == [(f"{NS}/svc", "Normal", "WorkloadProgressing")]
    dep = applied(client, "deployments")
    assert dep["metadata"]["ownerReferences"][0]["uid"] == "uid-svc"
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE


def test_second_reconcile_on_a_caught_up_cache_sends_nothing() -> None:
    r, _, client = make(service(), model(), template())
    r.reconcile(REQ)
    svc = service()
    svc["status"] = applied_status(client)
    dep = available(applied(client, "deployments"))
    k8s_svc = applied(client, "services")
    r2, ctx2, client2 = make(svc, model(), template(), dep, k8s_svc)
    r2.reconcile(REQ)
    # Only the status moves (Progressing → Ready); the workload is not re-applied.
    assert writes(client2)[:1] == [("apply_status", "aimservices", "svc")]
    assert applied_status(client2)["status"] == "Ready"
    assert ctx2.recorder.sent == [(f"{NS}/svc", "Normal", "Ready")]
    svc["status"] = applied_status(client2)
    r3, ctx3, client3 = make(svc, model(), template(), dep, k8s_svc)
    r3.reconcile(REQ)
    assert writes(client3) == []
    assert ctx3.recorder.sent == []


def test_scaled_by_hand_deployment_is_reapplied() -> None:
    r, _, client = make(service(), model(), template())
    r.reconcile(REQ)
    dep = available(applied(client, "deployments"))
    dep["spec"]["replicas"] = 5
    r2, _, client2 = make(service(), model(), template(), dep, applied(client, "services"))
    r2.reconcile(REQ)
    assert ("apply", "deployments", "svc") in writes(client2)
    assert ("apply", "services", "svc") not in writes(client2)


def test_changed_resources_reapply_the_deployment_with_new_values() -> None:
    r, _, client = make(service(), model(), template())
    r.reconcile(REQ)
    dep = available(applied(client, "deployments"))
    changed = service(resources={"requests": {"cpu": "6"}})
    r2, _, client2 = make(changed, model(), template(), dep, applied(client, "services"))
    r2.reconcile(REQ)
    body = applied(client2, "deployments")
    assert body["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] == {
        "amd.com/gpu": "1",
        "cpu": "6",
        "memory": "32Gi",
    }


def test_deployment_not_owned_by_the_service_is_a_conflict() -> None:
    foreign = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "svc", "namespace": NS, "labels": {LABEL_SERVICE: "svc"}},
        "spec": {"replicas": 1},
    }
    r, _, client = make(service(), model(), template(), foreign)
    r.reconcile(REQ)
    assert writes(client)[0] == ("apply_status", "aimservices", "svc")
    status = applied_status(client)
    assert status["status"] == "Failed"
    assert conditions(status)["WorkloadReady"][1] == "WorkloadConflict"


def test_deployment_past_its_progress_deadline_degrades_the_service() -> None:
    r, _, client = make(service(), model(), template())
    r.reconcile(REQ)
    dep = available(applied(client, "deployments"))
    dep["status"] = {
        "observedGeneration": 1,
        "conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
        ],
    }
    r2, _, client2 = make(service(), model(), template(), dep, applied(client, "services"))
    r2.reconcile(REQ)
    status = applied_status(client2)
    assert status["status"] == "Degraded"
    assert conditions(status)["Ready"][1] == "WorkloadFailed"


def test_credentials_come_from_service_then_template_then_model_then_runtime_config() -> None:
    r, _, client = make(
        service(imagePullSecrets=[{"name": "svc-pull"}]),
        model(serviceAccountName="model-sa", imagePullSecrets=[{"name": "model-pull"}]),
        template(serviceAccountName="tmpl-sa"),
        runtime_config(serviceAccountName="rc-sa", imagePullSecrets=[{"name": "rc-pull"}]),
    )
    r.reconcile(REQ)
    pod = applied(client, "deployments")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "tmpl-sa"
    assert pod["imagePullSecrets"] == [{"name": "svc-pull"}]


def test_profile_env_and_service_env_reach_the_container() -> None:
    r, _, client = make(
        service(env=[{"name": "AIM_METRIC", "value": "override"}, {"name": "X", "value": "1"}]),
        model(),
        template(metric="latency", precision="fp8", profileId="p1", gpu_count=2),
    )
    r.reconcile(REQ)
    container = applied(client, "deployments")["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [
        {"name": "AIM_GPU_COUNT", "value": "2"},
        {"name": "AIM_METRIC", "value": "override"},
        {"name": "AIM_PRECISION", "value": "fp8"},
        {"name": "AIM_PROFILE_ID", "value": "p1"},
        {"name": "X", "value": "1"},
    ]


# --------------------------------------------------------------------------- model


def test_image_without_model_creates_cluster_model_per_runtime_config() -> None:
    rc = runtime_config(model={"creationScope": "Cluster", "autoDiscovery": True})
    r, ctx, client = make(service(ref=None, image=IMAGE), rc)
    r.reconcile(REQ)
    assert writes(client)[:2] == [
        ("create", "aimclustermodels", AUTO),
        ("apply_status", "aimservices", "svc"),
    ]
    created = client.writes()[0].body
    assert created == {
        "apiVersion": API,
        "kind": "AIMClusterModel",
        "metadata": {"name": AUTO, "labels": {"aim.silogen.ai/auto-created": "true"}},
        "spec": {"image": IMAGE, "discovery": {"enabled": True, "autoCreateTemplates": True}},
    }
    status = applied_status(client)
    assert status["status"] == "Pending"
    assert status["resolvedModel"] == {"name": AUTO, "scope": "Cluster", "kind": "AIMClusterModel"}
    assert conditions(status)["ModelResolved"][1] == "ModelCreated"
    # The creation, then the status transition (Pending, waiting for the new model).
    assert ctx.recorder.sent == [(f"{NS}/svc", "Normal", "ModelCreated")] * 2


def test_image_without_model_creates_namespaced_model_by_default_with_service_credentials() -> None:
    svc = service(ref=None, image=IMAGE, imagePullSecrets=[{"name": "p"}])
    rc = runtime_config(model={"autoDiscovery": False})
    r, _, client = make(svc, rc)
    r.reconcile(REQ)
    created = client.writes()[0]
    assert (created.verb, created.resource, created.namespace) == ("create", "aimmodels", NS)
    assert created.body is not None
    assert created.body["spec"]["discovery"]["enabled"] is False
    assert created.body["spec"]["imagePullSecrets"] == [{"name": "p"}]


def test_auto_model_already_existing_counts_as_success() -> None:
    r, ctx, client = make(service(ref=None, image=IMAGE))
    client.fail("create", AIMModel.RESOURCE, error=AlreadyExists("exists", reason="AlreadyExists"))
    assert r.reconcile(REQ) == Result()
    assert writes(client)[:2] == [
        ("create", "aimmodels", AUTO),
        ("apply_status", "aimservices", "svc"),
    ]
    assert conditions(applied_status(client))["ModelResolved"][1] == "ModelCreated"
    # Only the status transition is reported; nothing was created by this reconcile.
    assert ctx.recorder.sent == [(f"{NS}/svc", "Normal", "ModelCreated")]


def test_existing_model_with_the_image_is_reused_namespace_first() -> None:
    r, _, client = make(
        service(ref=None, image=IMAGE),
        model("cluster-one"),
        model("ns-one", namespace=NS),
        template(model_name="ns-one", namespace=NS),
    )
    r.reconcile(REQ)
    assert not any(v == "create" and res.startswith("aim") for v, res, _ in writes(client))
    assert applied_status(client)["resolvedModel"]["name"] == "ns-one"


def test_auto_model_name_taken_by_another_image_fails_without_create() -> None:
    squatter = model(AUTO, namespace=NS, image="other/image:9")
    r, _, client = make(service(ref=None, image=IMAGE), squatter)
    r.reconcile(REQ)
    assert writes(client)[0] == ("apply_status", "aimservices", "svc")
    status = applied_status(client)
    assert status["status"] == "Failed"
    assert conditions(status)["ModelResolved"][1] == "ModelNameTaken"


def test_model_progressing_names_what_the_service_waits_for() -> None:
    r, _, client = make(service(), model(status="Progressing", message="discovery running"))
    r.reconcile(REQ)
    status = applied_status(client)
    assert status["status"] == "Pending"
    assert conditions(status)["Ready"] == (
        "False",
        "ModelNotReady",
        "model llama is Progressing: discovery running",
    )
    assert conditions(status)["TemplateResolved"][1] == "ModelNotReady"
    assert writes(client)[0] == ("apply_status", "aimservices", "svc")


def test_failed_model_fails_the_service_with_the_models_reason() -> None:
    r, ctx, client = make(service(), model(status="Failed", message="image not found"), template())
    r.reconcile(REQ)
    status = applied_status(client)
    assert status["status"] == "Failed"
    assert conditions(status)["Ready"] == (
        "False",
        "ModelFailed",
        "model llama is Failed: image not found",
    )
    assert ctx.recorder.sent == [(f"{NS}/svc", "Warning", "ModelFailed")]
    assert ("apply", "deployments", "svc") not in writes(client)


def test_missing_model_ref_degrades_the_service() -> None:
    r, _, client = make(service(ref="nope"))
    r.reconcile(REQ)
    status = applied_status(client)
    assert status["status"] == "Degraded"
    assert conditions(status)["ModelResolved"][1] == "ModelNotFound"


def test_explicit_runtime_config_missing_fails_before_touching_models() -> None:
    r, _, client = make(service(ref=None, image=IMAGE, runtimeConfigName="team"))
    r.reconcile(REQ)
    assert writes(client)[0] == ("apply_status", "aimservices", "svc")
    status = applied_status(client)
    assert status["status"] == "Failed"
    assert conditions(status)["RuntimeResolved"][1] == "RuntimeConfigMissing"
    assert conditions(status)["ModelResolved"][1] == "RuntimeConfigMissing"


# --------------------------------------------------------------------------- template


def test_no_templates_for_a_ready_model_degrades_and_says_so() -> None:
    r, _, client = make(service(), model())
    r.reconcile(REQ)
    status = applied_status(client)
    assert status["status"] == "Degraded"
    assert conditions(status)["TemplateResolved"][1:] == (
        "NoRunnableTemplate",
        "no templates for model llama",
    )


def test_templates_not_ready_yet_keep_the_service_pending_with_candidates() -> None:
    r, _, client = make(service(), model(), template(status="Progressing"))
    r.reconcile(REQ)
    status = applied_status(client)
    assert status["status"] == "Pending"
    assert status["templateCandidates"] == [
        {
            "name": "llama-t",
            "scope": "Cluster",
            "chosen": False,
            "reason": "not Ready: Progressing (Ready)",
        }
    ]


def test_deleted_service_is_a_no_op() -> None:
    r, ctx, client = make(model(), template())
    assert r.reconcile(REQ) == Result()
    assert client.actions == []
    assert ctx.recorder.sent == []


# --------------------------------------------------------------------------- wiring


def test_indexes_cover_ref_resolved_and_auto_model_names() -> None:
    idx = service_indexers()
    by_image = service(ref=None, image=IMAGE)
    by_image["status"] = {"resolvedModel": {"name": "m2"}, "resolvedTemplate": {"name": "t2"}}
    assert idx[INDEX_MODEL](by_image) == sorted([AUTO, "m2"])
    assert idx[INDEX_IMAGE](by_image) == [IMAGE]
    assert idx[INDEX_TEMPLATE](service(templateRef="t1")) == ["t1"]
    assert idx[INDEX_TEMPLATE](by_image) == ["t2"]
    assert idx[INDEX_RUNTIME_CONFIG](service()) == ["default"]
    assert idx[INDEX_MODEL](service()) == ["llama"]


def _queued(controller: Controller) -> set[Request]:
    out: set[Request] = set()
    while controller.queue.len():
        key, _ = controller.queue.get()
        assert key is not None
        out.add(key)
        controller.queue.done(key)
    return out


def test_setup_maps_models_templates_runtime_configs_and_deployments_to_services() -> None:
    ctx = fake_context()
    [controller] = setup(ctx)
    other_ns = service()
    other_ns["metadata"] = {**other_ns["metadata"], "namespace": "elsewhere", "name": "x"}
    seed(
        ctx,
        AIMService.RESOURCE,
        service(),
        service(ref=None, image=IMAGE) | {"metadata": {"name": "img", "namespace": NS}},
        other_ns,
    )

    deliver(ctx, AIMClusterModel.RESOURCE, model(image="other:1"))
    assert _queued(controller) == {REQ, Request("elsewhere", "x")}
    deliver(ctx, AIMModel.RESOURCE, model(namespace=NS, image="other:1"))
    assert _queued(controller) == {REQ}
    deliver(ctx, AIMClusterModel.RESOURCE, model("any-name", image=IMAGE + " "))
    assert _queued(controller) == {Request(NS, "img")}
    deliver(ctx, AIMServiceTemplate.RESOURCE, template(namespace=NS))
    assert _queued(controller) == {REQ}
    deliver(ctx, AIMClusterRuntimeConfig.RESOURCE, runtime_config(namespace=""))
    assert _queued(controller) == {REQ, Request(NS, "img"), Request("elsewhere", "x")}
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "svc",
            "namespace": NS,
            "ownerReferences": [
                {
                    "apiVersion": API,
                    "kind": "AIMService",
                    "name": "svc",
                    "uid": "u",
                    "controller": True,
                }
            ],
        },
    }
    informer = ctx.informers.informer(DEPLOYMENT, label_selector=LABEL_SERVICE)
    for registration in list(informer._registrations):
        registration.handler.on_add(dep, False)
    assert _queued(controller) == {REQ}
