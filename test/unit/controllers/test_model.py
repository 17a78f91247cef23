"""The model discovery reconciler: seed the caches, reconcile once, assert the API actions."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from aimctrl.api.v1alpha1.model import AIMClusterModel, AIMModel
from aimctrl.api.v1alpha1.runtimeconfig import AIMRuntimeConfig
from aimctrl.api.v1alpha1.template import AIMServiceTemplate
from aimctrl.controllers import discoveryrun, modelwatch
from aimctrl.controllers.context import Context, DiscoveryMode, EventRecorder, Settings
from aimctrl.controllers.discoveryjob import ANNOTATION_IMAGE, ANNOTATION_TOKEN, DISCOVERY_JOB_LABEL
from aimctrl.controllers.model import (
    FIELD_MANAGER,
    TEMPLATE_DEBOUNCE_SECONDS,
    ModelReconciler,
    retry_delay,
    setup,
)
from aimctrl.discovery.discover import DiscoveryResult, derive_gpu
from aimctrl.discovery.errors import ImageNotFoundError, RegistryUnavailableError
from aimctrl.discovery.labels import ImageMetadata, ModelMetadata, RecommendedDeployment
from aimctrl.discovery.termination import encode_termination_message
from aimctrl.kube.resources import JOB, POD, SECRET
from aimctrl.machinery.clock import FakeClock
from aimctrl.machinery.reconcile import Request, Result
from aimctrl.testing.fakeclient import (
    Action,
    FakeKubeClient,
    deliver,
    fake_context,
    queued,
    seed,
)

IMAGE = "registry.example/aim/llama:1"
NS = "team"
OPERATOR_NS = "aimctrl-system"


def _ctx(mode: DiscoveryMode = DiscoveryMode.JOB) -> Context:
    ctx = fake_context(
        settings=Settings(operator_namespace=OPERATOR_NS, discovery_mode=mode), clock=FakeClock()
    )
    # Events written in the worker, so that their order among the other writes is asserted.
    ctx.recorder = EventRecorder(ctx.client, clock=ctx.clock, background=False)
    return ctx


def _model(
    *, cluster: bool = False, status: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "llama", "uid": "model-uid", "generation": 1}
    if not cluster:
        meta["namespace"] = NS
    meta.update(spec.pop("metadata", {}))
    body: dict[str, Any] = {
        "apiVersion": "aim.silogen.ai/v1alpha1",
        "kind": "AIMClusterModel" if cluster else "AIMModel",
        "metadata": meta,
        "spec": {"image": IMAGE, "discovery": {"autoCreateTemplates": False}, **spec},
    }
    if status:
        body["status"] = status
    return body


def _reconciler(ctx: Context, *, cluster: bool = False) -> ModelReconciler:
    return ModelReconciler(ctx, kind=AIMClusterModel if cluster else AIMModel)


def _client(ctx: Context) -> FakeKubeClient:
    assert isinstance(ctx.client, FakeKubeClient)
    return ctx.client


def _writes(ctx: Context) -> list[tuple[str, str, str, str]]:
    return [
        (a.verb, a.resource, a.namespace, "" if a.resource == "events" else a.name)
        for a in _client(ctx).writes()
    ]


def _status_write(ctx: Context) -> dict[str, Any]:
    (applied,) = [a for a in _client(ctx).writes() if a.verb == "apply_status"]
    assert applied.field_manager == FIELD_MANAGER
    assert applied.body is not None
    return applied.body["status"]  # type: ignore[no-any-return]


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def _result() -> DiscoveryResult:
    deployment = RecommendedDeployment(gpu_model="MI300X", gpu_count=1, metric="latency")
    return DiscoveryResult(
        image=IMAGE,
        digest="sha256:" + "b" * 64,
        platform="linux/amd64",
        discovered_at="2025-01-01T00:00:00Z",
        image_metadata=ImageMetadata(
            model=ModelMetadata(canonical_name="meta/llama", recommended_deployments=[deployment])
        ),
        gpu=derive_gpu([deployment]),
    )


def _job(*, image: str = IMAGE, token: str = "", uid: str = "job-uid") -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "llama-discovery",
            "namespace": NS,
            "uid": uid,
            "labels": {DISCOVERY_JOB_LABEL: "llama-discovery"},
            "annotations": {ANNOTATION_IMAGE: image, ANNOTATION_TOKEN: token},
            "ownerReferences": [{"kind": "AIMModel", "uid": "model-uid", "controller": True}],
        },
    }


def _pod(message: str, *, exit_code: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "llama-discovery-abcde",
            "namespace": NS,
            "labels": {DISCOVERY_JOB_LABEL: "llama-discovery"},
            "ownerReferences": [{"kind": "Job", "uid": "job-uid", "controller": True}],
        },
        "status": {
            "containerStatuses": [
                {
                    "name": "discover",
                    "state": {"terminated": {"exitCode": exit_code, "message": message}},
                }
            ]
        },
    }


def _seed_job(ctx: Context, job: dict[str, Any], *pods: dict[str, Any]) -> None:
    ctx.informers.informer(JOB, label_selector=DISCOVERY_JOB_LABEL).indexer.add(job)
    for pod in pods:
        ctx.informers.informer(POD, label_selector=DISCOVERY_JOB_LABEL).indexer.add(pod)


REQ = Request(NS, "llama")


def _b64(data: object) -> str:
    return base64.b64encode(json.dumps(data).encode()).decode()


# ------------------------------------------------------------------------------ job mode


def test_new_model_gets_a_discovery_job_and_progressing_status() -> None:
    ctx = _ctx()
    reconciler = _reconciler(ctx)
    seed(ctx, AIMModel.RESOURCE, _model())
    result = reconciler.reconcile(REQ)
    assert _writes(ctx) == [
        ("create", "events", NS, ""),  # DefaultRuntimeConfigMissing
        ("create", "jobs", NS, "llama-discovery"),
        ("create", "events", NS, ""),  # DiscoveryStarted
        ("apply_status", "aimmodels", NS, "llama"),
    ]
    assert [r for _, _, r in ctx.recorder.sent] == [
        "DefaultRuntimeConfigMissing",
        "DiscoveryStarted",
    ]
    status = _status_write(ctx)
    assert status["status"] == "Progressing"
    assert _condition(status, "MetadataExtracted")["reason"] == "DiscoveryRunning"
    assert _condition(status, "Ready")["status"] == "False"
    assert result.requeue_after > 0  # a safety net; Job and pod events normally come first


def test_cluster_model_job_runs_in_the_operator_namespace() -> None:
    ctx = _ctx()
    reconciler = _reconciler(ctx, cluster=True)
    seed(ctx, AIMClusterModel.RESOURCE, _model(cluster=True))
    reconciler.reconcile(Request("", "llama"))
    (created,) = [a for a in _client(ctx).writes() if a.resource == "jobs"]
    assert (created.namespace, created.name) == (OPERATOR_NS, "llama-discovery")
    assert created.body is not None
    assert created.body["metadata"]["ownerReferences"][0]["kind"] == "AIMClusterModel"


def test_finished_pod_result_is_recorded_and_job_left_for_its_ttl() -> None:
    ctx = _ctx()
    reconciler = _reconciler(ctx)
    seed(ctx, AIMModel.RESOURCE, _model())
    _seed_job(ctx, _job(), _pod(encode_termination_message(_result())))
    assert reconciler.reconcile(REQ) == Result()
    assert ("delete", "jobs", NS, "llama-discovery") not in _writes(ctx)
    status = _status_write(ctx)
    assert status["status"] == "Ready"
    assert _condition(status, "MetadataExtracted")["status"] == "True"
    assert status["imageMetadata"]["model"]["canonicalName"] == "meta/llama"
    found = status["discoveredMetadata"]
    assert found["jobName"] == "llama-discovery"
    assert found["gpu"] == {"models": ["MI300X"], "minCount": 1}
    assert "DiscoverySucceeded" in [r for _, _, r in ctx.recorder.sent]


def test_structured_failure_fails_the_model_with_its_reason() -> None:
    ctx = _ctx()
    reconciler = _reconciler(ctx)
    seed(ctx, AIMModel.RESOURCE, _model())
    error = ImageNotFoundError("manifest unknown: aim/llama:1")
    _seed_job(ctx, _job(), _pod(encode_termination_message(error), exit_code=4))
    reconciler.reconcile(REQ)
    status = _status_write(ctx)
    assert status["status"] == "Failed"
    extracted = _condition(status, "MetadataExtracted")
    assert (extracted["status"], extracted["reason"]) == ("False", "ImageNotFound")
    assert "imageMetadata" not in status
    assert status["discoveredMetadata"]["image"] == IMAGE  # the attempt is recorded: no loop


def test_job_failed_without_result_is_retried_with_growing_backoff() -> None:
    ctx = _ctx()
    reconciler = _reconciler(ctx)
    seed(ctx, AIMModel.RESOURCE, _model())
    _seed_job(ctx, _job(), _pod("", exit_code=137))
    first = reconciler.reconcile(REQ)
    assert first.requeue_after == retry_delay(1) == 10.0
    assert ("delete", "jobs", NS, "llama-discovery") in _writes(ctx)
    status = _status_write(ctx)
    assert status["status"] == "Progressing"
    assert _condition(status, "MetadataExtracted")["reason"] == "DiscoveryRetrying"
    # Before the backoff elapses nothing new is started, whatever wakes the model.
    _client(ctx).actions.clear()
    assert 0 < reconciler.reconcile(REQ).requeue_after <= 10.0
    assert not [w for w in _writes(ctx) if w[1] == "jobs"]
    assert [retry_delay(n) for n in (1, 2, 3, 6, 7, 20)] == [10, 20, 40, 300, 300, 300]


def test_job_for_another_image_is_deleted_never_read() -> None:
    ctx = _ctx()
    reconciler = _reconciler(ctx)
    seed(ctx, AIMModel.RESOURCE, _model())
    _seed_job(ctx, _job(image="old:1"), _pod(encode_termination_message(_result())))
    result = reconciler.reconcile(REQ)
    assert ("delete", "jobs", NS, "llama-discovery") in _writes(ctx)
    assert result.requeue_after > 0
    status = _status_write(ctx)
    assert _condition(status, "MetadataExtracted")["status"] == "Unknown"
    assert "imageMetadata" not in status


def test_missing_pull_secret_blocks_the_job() -> None:
    ctx = _ctx()
    reconciler = _reconciler(ctx)
    seed(ctx, AIMModel.RESOURCE, _model(imagePullSecrets=[{"name": "creds"}]))
    reconciler.reconcile(REQ)
    assert not [w for w in _writes(ctx) if w[1] == "jobs"]
    status = _status_write(ctx)
    assert status["status"] == "Failed"
    assert _condition(status, "MetadataExtracted")["reason"] == "PullSecretMissing"


def test_present_pull_secret_is_mounted_and_its_data_never_cached() -> None:
    ctx = _ctx()
    reconciler = _reconciler(ctx)
    seed(ctx, AIMModel.RESOURCE, _model(imagePullSecrets=[{"name": "creds"}]))
    secret = {"metadata": {"name": "creds", "namespace": NS}, "data": {".dockerconfigjson": "e30="}}
    reconciler.secrets._indexer.add(dict(secret))  # type: ignore[attr-defined]
    reconciler.reconcile(REQ)
    assert "data" not in (reconciler.secrets.get("creds", NS) or {"data": 1})
    (created,) = [a for a in _client(ctx).writes() if a.resource == "jobs"]
    assert created.body is not None
    volumes = created.body["spec"]["template"]["spec"]["volumes"]
    assert [v["secret"]["secretName"] for v in volumes] == ["creds"]


def test_explicit_runtime_config_missing_fails_without_discovery() -> None:
    ctx = _ctx()
    reconciler = _reconciler(ctx)
    seed(ctx, AIMModel.RESOURCE, _model(runtimeConfigName="team-config"))
    reconciler.reconcile(REQ)
    assert not [w for w in _writes(ctx) if w[1] == "jobs"]
    status = _status_write(ctx)
    assert status["status"] == "Failed"
    assert _condition(status, "RuntimeResolved")["reason"] == "RuntimeConfigMissing"
    assert _condition(status, "Ready")["reason"] == "RuntimeConfigMissing"
    assert [r for _, _, r in ctx.recorder.sent] == ["RuntimeConfigMissing"]


def test_runtime_config_disabling_auto_discovery_makes_the_model_ready() -> None:
    ctx = _ctx()
    reconciler = _reconciler(ctx)
    seed(ctx, AIMModel.RESOURCE, _model(runtimeConfigName="team-config"))
    config = {
        "apiVersion": "aim.silogen.ai/v1alpha1",
        "kind": "AIMRuntimeConfig",
        "metadata": {"name": "team-config", "namespace": NS, "uid": "cfg"},
        "spec": {"model": {"autoDiscovery": False}},
    }
    seed(ctx, AIMRuntimeConfig.RESOURCE, config)
    reconciler.reconcile(REQ)
    assert not [w for w in _writes(ctx) if w[1] == "jobs"]
    status = _status_write(ctx)
    assert status["status"] == "Ready"
    assert status["resolvedRuntimeConfig"]["scope"] == "Namespace"
    assert _condition(status, "MetadataExtracted")["reason"] == "DiscoveryDisabled"


def test_disabling_discovery_deletes_the_models_job() -> None:
    ctx = _ctx()
    reconciler = _reconciler(ctx)
    seed(ctx, AIMModel.RESOURCE, _model(discovery={"enabled": False}))
    _seed_job(ctx, _job())
    reconciler.reconcile(REQ)
    assert ("delete", "jobs", NS, "llama-discovery") in _writes(ctx)
    assert _status_write(ctx)["status"] == "Ready"


def test_unchanged_status_is_not_written_again() -> None:
    ctx = _ctx()
    reconciler = _reconciler(ctx)
    seed(ctx, AIMModel.RESOURCE, _model())
    _seed_job(ctx, _job(), _pod(encode_termination_message(_result())))
    reconciler.reconcile(REQ)
    seed(ctx, AIMModel.RESOURCE, _model(status=_status_write(ctx)))
    _client(ctx).actions.clear()
    assert reconciler.reconcile(REQ) == Result()
    assert _client(ctx).writes() == []


def test_rediscover_of_a_ready_model_keeps_it_ready_through_transient_failures() -> None:
    ctx = _ctx()
    reconciler = _reconciler(ctx)
    seed(ctx, AIMModel.RESOURCE, _model())
    _seed_job(ctx, _job(), _pod(encode_termination_message(_result())))
    reconciler.reconcile(REQ)
    ready = _status_write(ctx)
    seed(
        ctx,
        AIMModel.RESOURCE,
        _model(status=ready, metadata={"annotations": {"aim.silogen.ai/rediscover": "2"}}),
    )
    _seed_job(ctx, _job(token="2"), _pod("", exit_code=1))
    _client(ctx).actions.clear()
    result = reconciler.reconcile(REQ)
    assert result.requeue_after == 10.0
    assert [w for w in _writes(ctx) if w[0] == "apply_status"] == []  # still Ready, untouched


def test_auto_templates_not_ready_keep_the_model_progressing() -> None:
    ctx = _ctx()
    reconciler = _reconciler(ctx)
    seed(ctx, AIMModel.RESOURCE, _model(discovery={"autoCreateTemplates": True}))
    _seed_job(ctx, _job(), _pod(encode_termination_message(_result())))
    reconciler.reconcile(REQ)
    status = _status_write(ctx)
    assert status["status"] == "Progressing"
    assert _condition(status, "Ready")["reason"] == "TemplatesProgressing"


def _owned_template(
    rv: str = "", *, name: str = "llama-lat-abcd", spec: dict[str, Any] | None = None, **status: Any
) -> dict[str, Any]:
    """An auto-generated AIMServiceTemplate of the model ``llama`` (its controller owner)."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": NS,
        "uid": f"uid-{name}",
        "generation": 1,
        "labels": {"aim.silogen.ai/auto-generated": "true", "aim.silogen.ai/model": "llama"},
        "ownerReferences": [
            {
                "apiVersion": "aim.silogen.ai/v1alpha1",
                "kind": "AIMModel",
                "name": "llama",
                "uid": "model-uid",
                "controller": True,
            }
        ],
    }
    if rv:
        meta["resourceVersion"] = rv
    return {
        "apiVersion": "aim.silogen.ai/v1alpha1",
        "kind": "AIMServiceTemplate",
        "metadata": meta,
        "spec": {"modelName": "llama", **(spec or {})},
        "status": status,
    }


def test_a_degraded_auto_template_degrades_the_model() -> None:
    ctx = _ctx()
    reconciler = _reconciler(ctx)
    seed(ctx, AIMModel.RESOURCE, _model(discovery={"autoCreateTemplates": True}))
    _seed_job(ctx, _job(), _pod(encode_termination_message(_result())))
    template = _owned_template(
        name="llama-1x-mi300x-lat-0000",
        spec={"metric": "latency"},
        status="Degraded",
        observedGeneration=1,
    )
    seed(ctx, AIMServiceTemplate.RESOURCE, template)
    reconciler.reconcile(REQ)
    assert _status_write(ctx)["status"] == "Degraded"


# ------------------------------------------------------------------------------ inline mode


def test_inline_discovery_records_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _ctx(DiscoveryMode.INLINE)
    reconciler = _reconciler(ctx)
    seed(ctx, AIMModel.RESOURCE, _model())
    monkeypatch.setattr(discoveryrun, "discover", lambda image, **kw: _result())
    reconciler.reconcile(REQ)
    assert [w for w in _writes(ctx) if w[1] != "events"] == [
        ("apply_status", "aimmodels", NS, "llama")
    ]
    status = _status_write(ctx)
    assert status["status"] == "Ready"
    assert "jobName" not in status["discoveredMetadata"]


def test_inline_reads_pull_secrets_through_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _ctx(DiscoveryMode.INLINE)
    reconciler = _reconciler(ctx)
    seed(ctx, AIMModel.RESOURCE, _model(imagePullSecrets=[{"name": "creds"}]))
    _client(ctx).put(
        SECRET,
        {
            "metadata": {"name": "creds", "namespace": NS},
            "data": {".dockerconfigjson": _b64({"auths": {"registry.example": {"auth": "dTpw"}}})},
        },
    )
    seen: dict[str, Any] = {}

    def fake_discover(image: str, **kw: Any) -> DiscoveryResult:
        seen.update(kw)
        return _result()

    monkeypatch.setattr(discoveryrun, "discover", fake_discover)
    reconciler.reconcile(REQ)
    assert Action("get", "secrets", NS, "creds") in _client(ctx).actions
    creds = seen["credentials"].lookup("registry.example")
    assert (creds.username, creds.password) == ("u", "p")


def test_inline_transient_failure_requeues_with_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _ctx(DiscoveryMode.INLINE)
    reconciler = _reconciler(ctx)
    seed(ctx, AIMModel.RESOURCE, _model())

    def unavailable(image: str, **kw: Any) -> DiscoveryResult:
        raise RegistryUnavailableError("registry answered 503")

    monkeypatch.setattr(discoveryrun, "discover", unavailable)
    assert reconciler.reconcile(REQ).requeue_after == 10.0
    assert _condition(_status_write(ctx), "MetadataExtracted")["reason"] == "DiscoveryRetrying"


# ------------------------------------------------------------------------------ wiring


def test_setup_returns_one_controller_per_kind() -> None:
    assert [c.name for c in setup(_ctx())] == ["aimclustermodel", "aimmodel"]


def test_a_secret_wakes_only_the_models_of_its_scope_waiting_for_a_pull_secret() -> None:
    ctx = _ctx()
    reconciler = _reconciler(ctx)
    waiting = _model(
        status={
            "status": "Failed",
            "conditions": [
                {
                    "type": "MetadataExtracted",
                    "status": "False",
                    "reason": "PullSecretMissing",
                    "message": "",
                    "lastTransitionTime": "2025-01-01T00:00:00Z",
                }
            ],
        }
    )
    other = _model(metadata={"name": "other"})
    seed(ctx, AIMModel.RESOURCE, waiting, other)
    wake = modelwatch.waiting_for_secret(
        reconciler.models,
        cluster_scoped=reconciler.cluster_scoped,
        operator_namespace=ctx.settings.operator_namespace,
    )
    assert wake({"metadata": {"name": "creds", "namespace": NS}}) == [REQ]
    assert wake({"metadata": {"name": "creds", "namespace": "elsewhere"}}) == []


def test_a_runtime_config_wakes_the_models_naming_it() -> None:
    ctx = _ctx()
    reconciler = _reconciler(ctx)
    seed(
        ctx,
        AIMModel.RESOURCE,
        _model(runtimeConfigName="team-config"),
        _model(metadata={"name": "x", "namespace": "elsewhere"}, runtimeConfigName="team-config"),
        _model(metadata={"name": "y"}),
    )
    namespaced = modelwatch.by_runtime_config(reconciler.models, namespaced=True)
    cluster = modelwatch.by_runtime_config(reconciler.models, namespaced=False)
    assert namespaced({"metadata": {"name": "team-config", "namespace": NS}}) == [REQ]
    assert sorted(cluster({"metadata": {"name": "team-config"}})) == [
        Request("elsewhere", "x"),
        REQ,
    ]


def test_model_counter_moves_counts_on_informer_events_only_when_status_changes() -> None:
    from aimctrl.controllers.model import ModelCounter
    from aimctrl.machinery.store import DeletedFinalStateUnknown

    calls: list[tuple[str, dict[str, int]]] = []
    counter = ModelCounter("AIMModel", lambda kind, counts: calls.append((kind, dict(counts))))
    a = {"metadata": {"name": "a"}}  # no status yet: Pending
    b = {"metadata": {"name": "b"}, "status": {"status": "Ready"}}
    counter.on_add(a, True)
    counter.on_add(b, True)
    ready_a = {"metadata": {"name": "a"}, "status": {"status": "Ready"}}
    counter.on_update(ready_a, ready_a)  # no move, no gauge update
    counter.on_update(a, ready_a)
    counter.on_delete(DeletedFinalStateUnknown("b", b))
    assert calls == [
        ("AIMModel", {"Pending": 1}),
        ("AIMModel", {"Pending": 1, "Ready": 1}),
        ("AIMModel", {"Ready": 2}),
        ("AIMModel", {"Ready": 1}),
    ]


def _versioned(obj: dict[str, Any], rv: str, **status: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(obj))
    out["metadata"]["resourceVersion"] = rv
    out["metadata"]["managedFields"] = [{"manager": rv}]
    out.setdefault("status", {}).update(status)
    return out


def test_another_controllers_condition_does_not_wake_the_model() -> None:
    ctx = _ctx()
    (_, controller) = setup(ctx)
    ready = {"type": "Ready", "status": "False", "reason": "Reconciling", "message": "wait"}
    old = _versioned(_model(), "1", status="Progressing", conditions=[ready])
    generated = {"type": "TemplatesAutoGenerated", "status": "True", "reason": "x", "message": ""}
    new = _versioned(_model(), "2", status="Progressing", conditions=[ready, generated])
    deliver(ctx, AIMModel.RESOURCE, new, old=old)
    assert queued(controller) == set()
    # The model's own part moving (its Ready condition) or its metadata does wake it.
    moved = _versioned(new, "3", conditions=[{**ready, "status": "True"}, generated])
    deliver(ctx, AIMModel.RESOURCE, moved, old=new)
    assert queued(controller) == {REQ}
    annotated = _versioned(new, "4")
    annotated["metadata"]["annotations"] = {"aim.silogen.ai/rediscover": "1"}
    deliver(ctx, AIMModel.RESOURCE, annotated, old=new)
    assert queued(controller) == {REQ}


def _after_debounce(ctx: Context, controller: Any) -> set[Request]:
    """The keys queued once the template debounce has passed on the fake clock."""
    assert controller.queue.wait_parked()
    assert isinstance(ctx.clock, FakeClock)
    ctx.clock.step(TEMPLATE_DEBOUNCE_SECONDS)
    assert controller.queue.wait_parked()
    return queued(controller)


def test_a_template_wakes_its_model_only_when_what_the_summary_reads_moved() -> None:
    ctx = _ctx()
    (_, controller) = setup(ctx)
    ready = [{"type": "Ready", "status": "True", "reason": "Ready", "message": "ok"}]
    old = _owned_template("1", status="Ready", observedGeneration=1, conditions=ready)
    profiled = _owned_template(
        "2",
        status="Ready",
        observedGeneration=1,
        conditions=[{**ready[0], "message": "model is available"}],
        profile={"metadata": {"gpu": "MI300X"}},
    )
    deliver(ctx, AIMServiceTemplate.RESOURCE, profiled, old=old)
    assert _after_debounce(ctx, controller) == set()
    degraded = _owned_template(
        "3",
        status="Degraded",
        observedGeneration=1,
        conditions=[{**ready[0], "status": "False", "reason": "ModelFailed"}],
    )
    deliver(ctx, AIMServiceTemplate.RESOURCE, degraded, old=profiled)
    assert _after_debounce(ctx, controller) == {REQ}
    # A new template always wakes it.
    deliver(ctx, AIMServiceTemplate.RESOURCE, _owned_template("4"))
    assert _after_debounce(ctx, controller) == {REQ}


def test_a_burst_of_template_events_wakes_the_model_once_after_the_debounce() -> None:
    ctx = _ctx()
    (_, controller) = setup(ctx)
    for i in range(4):
        deliver(ctx, AIMServiceTemplate.RESOURCE, _owned_template(str(i), name=f"t{i}"))
    assert queued(controller) == set()  # nothing yet: the burst is still folding
    assert controller.queue.num_waiting() == 1
    assert controller.queue.wait_parked()
    assert isinstance(ctx.clock, FakeClock)
    ctx.clock.step(TEMPLATE_DEBOUNCE_SECONDS)
    assert controller.queue.wait_parked()
    assert controller.queue.len() == 1
    assert queued(controller) == {REQ}
    # The model's own events are not delayed.
    deliver(ctx, AIMModel.RESOURCE, _model())
    assert queued(controller) == {REQ}
