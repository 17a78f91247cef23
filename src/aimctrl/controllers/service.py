"""Service resolution (SPEC §6): an AIMService → model, template, runtime config, resources,
and a running workload (Deployment + ClusterIP Service).

Guarantees:

* level-based: one reconcile reads the service and everything it depends on from the shared
  cache and recomputes the whole status; status is written (server-side apply, field manager
  ``aimctrl-service``) only when it differs from the cached one;
* a service naming an image never causes two models: the auto-created model's name is a pure
  function of the image and ``AlreadyExists`` counts as success, so concurrent reconciles (and
  reconciles on a cache that has not yet seen the model) converge on one object;
* every waiting state names what it waits for ("model auto-… is Progressing: …") in the
  ``Ready`` condition and in the condition of the step that blocks; later steps report the
  same blocker instead of guessing;
* the workload is applied only when its content (hash annotation) or replica count differs from
  the cached object, so a steady state sends no writes; it is owned by the service, so deleting
  the service removes it (garbage collector);
* events are emitted on transitions only: a model created, ``status.status`` changed.

Status values: Pending (waiting for the model or a template to become usable, or for a node
with the GPUs a template needs: ``NoRunnableTemplate``, ``TemplateNotAvailable``), Progressing
(workload rolling out), Ready (Deployment available), Degraded (something the user must create
or fix: model or template not found, workload stuck), Failed (explicit runtime config missing,
model or chosen template Failed, a name taken by a foreign object).

The status computation lives in :mod:`~aimctrl.controllers.servicestatus`, the indexes and map
functions that wake a service in :mod:`~aimctrl.controllers.serviceindex`.
"""

from __future__ import annotations

from typing import Any

import structlog

from aimctrl.api.v1alpha1.common import ResolvedReference
from aimctrl.api.v1alpha1.enums import (
    AIMStatus,
    ConditionType,
    CreationScope,
    Reason,
    ResolvedScope,
)
from aimctrl.api.v1alpha1.model import AIMClusterModel, AIMModel
from aimctrl.api.v1alpha1.runtimeconfig import AIMClusterRuntimeConfig, AIMRuntimeConfig
from aimctrl.api.v1alpha1.service import AIMService, AIMServiceStatus
from aimctrl.api.v1alpha1.template import AIMClusterServiceTemplate, AIMServiceTemplate
from aimctrl.controllers.context import (
    Context,
    EventType,
    cluster_getter,
    field_manager,
    namespaced_getter,
    resource_of,
)
from aimctrl.controllers.fleet import RBAC as FLEET_RBAC
from aimctrl.controllers.fleet import FleetChange
from aimctrl.controllers.serviceindex import (
    INDEX_IMAGE,
    INDEX_MODEL,
    INDEX_RUNTIME_CONFIG,
    INDEX_TEMPLATE,
    dig,
    for_model,
    for_runtime_config,
    for_template,
    service_indexers,
)
from aimctrl.controllers.servicestatus import (
    READY_MESSAGE,
    Outcome,
    describe,
    service_status,
    why,
)
from aimctrl.controllers.status import status_apply_body, wall_now
from aimctrl.controllers.workload import (
    LABEL_SERVICE,
    cluster_ip_service,
    deployment,
    deployment_state,
    needs_apply,
    owned_by,
    with_applied_hash,
    workload_inputs,
)
from aimctrl.kube.errors import AlreadyExists
from aimctrl.kube.resources import DEPLOYMENT, SERVICE, Resource
from aimctrl.machinery.controller import Controller
from aimctrl.machinery.handler import (
    EnqueueRequestForObject,
    EnqueueRequestForOwner,
    EnqueueRequestsFromMapFunc,
    request_for,
)
from aimctrl.machinery.reconcile import Request, Result
from aimctrl.machinery.store import Object
from aimctrl.rbac import PolicyRule
from aimctrl.resolve.models import (
    FoundModel,
    auto_model_object,
    find_model_by_image,
    lookup_model,
    resolved_reference,
)
from aimctrl.resolve.resources import resolved_resources
from aimctrl.resolve.runtimeconfig import (
    RuntimeResolution,
    resolve_runtime_config,
)
from aimctrl.resolve.selection import select_template
from aimctrl.resolve.templates import AnyModel, AnyTemplate

__all__ = [
    "CONTROLLER_NAME",
    "INDEX_IMAGE",
    "INDEX_MODEL",
    "INDEX_RUNTIME_CONFIG",
    "INDEX_TEMPLATE",
    "RBAC",
    "ServiceReconciler",
    "service_indexers",
    "setup",
]

log = structlog.get_logger(__name__)

CONTROLLER_NAME = "service"
FIELD_MANAGER = field_manager(CONTROLLER_NAME)

RBAC: tuple[PolicyRule, ...] = (
    PolicyRule(
        api_groups=("aim.silogen.ai",), resources=("aimservices",), verbs=("get", "list", "watch")
    ),
    PolicyRule(
        api_groups=("aim.silogen.ai",),
        resources=("aimservices/status",),
        verbs=("get", "patch", "update"),
    ),
    PolicyRule(
        api_groups=("aim.silogen.ai",),
        resources=("aimclustermodels", "aimmodels"),
        verbs=("create", "get", "list", "watch"),
    ),
    PolicyRule(
        api_groups=("aim.silogen.ai",),
        resources=(
            "aimclusterruntimeconfigs",
            "aimclusterservicetemplates",
            "aimruntimeconfigs",
            "aimservicetemplates",
        ),
        verbs=("get", "list", "watch"),
    ),
    PolicyRule(
        api_groups=("apps",),
        resources=("deployments",),
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    PolicyRule(
        api_groups=("",),
        resources=("services",),
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    PolicyRule(api_groups=("",), resources=("events",), verbs=("create", "patch")),
    *FLEET_RBAC,
)

_SERVICE = resource_of(AIMService.RESOURCE)
_WORKLOAD_SELECTOR = LABEL_SERVICE  # an existence selector: only aimctrl's workloads are cached


# --------------------------------------------------------------------------- reconciler


class ServiceReconciler:
    """Resolves one AIMService and runs its workload."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._client = ctx.client
        self._fleet = ctx.fleet()
        inf = ctx.informers
        self.services = inf.lister(AIMService.RESOURCE, indexers=service_indexers())
        self.models = inf.lister(AIMModel.RESOURCE)
        self.cluster_models = inf.lister(AIMClusterModel.RESOURCE)
        self.templates = inf.lister(AIMServiceTemplate.RESOURCE)
        self.cluster_templates = inf.lister(AIMClusterServiceTemplate.RESOURCE)
        self.runtime_configs = inf.lister(AIMRuntimeConfig.RESOURCE)
        self.cluster_runtime_configs = inf.lister(AIMClusterRuntimeConfig.RESOURCE)
        self.deployments = inf.lister(DEPLOYMENT, label_selector=_WORKLOAD_SELECTOR)
        self.workload_services = inf.lister(SERVICE, label_selector=_WORKLOAD_SELECTOR)
        # Cached lookups, parsed fresh (the cache is read-only).
        self._ns_model = namespaced_getter(self.models, AIMModel)
        self._cl_model = cluster_getter(self.cluster_models, AIMClusterModel)
        self._ns_template = namespaced_getter(self.templates, AIMServiceTemplate)
        self._cl_template = cluster_getter(self.cluster_templates, AIMClusterServiceTemplate)
        self._ns_runtime_config = namespaced_getter(self.runtime_configs, AIMRuntimeConfig)
        self._cl_runtime_config = cluster_getter(
            self.cluster_runtime_configs, AIMClusterRuntimeConfig
        )

    # -- reconcile ------------------------------------------------------------------------

    def reconcile(self, request: Request) -> Result:
        raw = self.services.get(request.name, request.namespace)
        if raw is None:
            return Result()  # deleted: the garbage collector removes the workload
        service = self.services.decode(raw, AIMService.model_validate)
        if service.metadata.deletion_timestamp is not None:
            return Result()
        out = Outcome()
        self._resolve(service, raw, out)
        out.finish()
        self._write_status(raw, service, out)
        return Result()

    def _resolve(self, service: AIMService, raw: Object, out: Outcome) -> None:
        namespace = service.metadata.namespace or ""
        runtime = resolve_runtime_config(
            consumer_namespace=namespace,
            name=service.spec.runtime_config_name,
            get_namespaced=self._ns_runtime_config,
            get_cluster=self._cl_runtime_config,
        )
        out.resolved_runtime_config = runtime.reference
        if runtime.blocking:
            out.block(
                ConditionType.RUNTIME_RESOLVED, AIMStatus.FAILED, runtime.reason, runtime.message
            )
            return
        out.conditions[ConditionType.RUNTIME_RESOLVED] = (
            runtime.status,
            runtime.reason,
            runtime.message,
        )
        model = self._resolve_model(service, raw, runtime, out)
        if model is None:
            return
        template = self._resolve_template(service, model, out)
        if template is None:
            return
        self._run_workload(service, model, template, runtime, out)

    # -- model ----------------------------------------------------------------------------

    def _resolve_model(
        self, service: AIMService, raw: Object, runtime: RuntimeResolution, out: Outcome
    ) -> AnyModel | None:
        namespace = service.metadata.namespace or ""
        ref, image = service.spec.model.ref, service.spec.model.image
        found: FoundModel | None
        if ref:
            found = lookup_model(
                ref, namespace, get_namespaced=self._ns_model, get_cluster=self._cl_model
            )
            if found is None:
                message = f"no AIMModel {namespace}/{ref} and no AIMClusterModel {ref}"
                out.block(
                    ConditionType.MODEL_RESOLVED,
                    AIMStatus.DEGRADED,
                    Reason.MODEL_NOT_FOUND,
                    message,
                )
                return None
        else:
            assert image is not None  # the schema requires exactly one of ref and image
            found = self._model_by_image(image, namespace)
            if found is None:
                self._create_model(service, raw, image, runtime, out)
                return None
        model = found.model
        out.resolved_model = resolved_reference(model)
        state = model.status.status
        name = model.metadata.name
        if state == AIMStatus.FAILED:
            message = f"model {name} is Failed: {why(model)}"
            out.block(ConditionType.MODEL_RESOLVED, AIMStatus.FAILED, Reason.MODEL_FAILED, message)
            return None
        if state in (AIMStatus.PENDING, AIMStatus.PROGRESSING):
            message = f"model {name} is {state.value}: {why(model)}"
            out.block(
                ConditionType.MODEL_RESOLVED, AIMStatus.PENDING, Reason.MODEL_NOT_READY, message
            )
            return None
        out.ok(ConditionType.MODEL_RESOLVED, Reason.MODEL_RESOLVED, f"{describe(model)} ({state})")
        return model

    def _model_by_image(self, image: str, namespace: str) -> FoundModel | None:
        wanted = image.strip()
        # Filter on the raw dicts first: only models with this image are worth parsing.
        namespaced = [
            self.models.decode(m, AIMModel.model_validate)
            for m in self.models.list(namespace)
            if dig(m, "spec", "image") == wanted
        ]
        cluster = [
            self.cluster_models.decode(m, AIMClusterModel.model_validate)
            for m in self.cluster_models.list()
            if dig(m, "spec", "image") == wanted
        ]
        return find_model_by_image(
            image, namespace, namespaced_models=namespaced, cluster_models=cluster
        )

    def _create_model(
        self,
        service: AIMService,
        raw: Object,
        image: str,
        runtime: RuntimeResolution,
        out: Outcome,
    ) -> None:
        namespace = service.metadata.namespace or ""
        policy = runtime.model_policy
        scope = policy.effective_creation_scope
        # A namespaced model can use the service's credentials (same namespace); a cluster
        # model's secrets live in the operator namespace, so nothing is copied there.
        same_namespace = scope == CreationScope.NAMESPACE
        body = auto_model_object(
            image,
            scope=scope,
            namespace=namespace,
            auto_discovery=policy.effective_auto_discovery,
            image_pull_secrets=service.spec.image_pull_secrets if same_namespace else None,
            service_account_name=service.spec.service_account_name if same_namespace else None,
        )
        kind = AIMModel if body["kind"] == AIMModel.RESOURCE.kind else AIMClusterModel
        name = body["metadata"]["name"]
        model_ns = body["metadata"].get("namespace") or ""
        where = f"{kind.RESOURCE.kind} {model_ns + '/' if model_ns else ''}{name}"
        out.resolved_model = ResolvedReference(
            name=name,
            namespace=model_ns or None,
            scope=ResolvedScope.NAMESPACE if model_ns else ResolvedScope.CLUSTER,
            kind=kind.RESOURCE.kind,
        )
        lister = self.models if model_ns else self.cluster_models
        squatter = lister.get(name, model_ns)
        if squatter is not None:
            # The deterministic name is taken by a model with another image: creating would
            # fail forever with AlreadyExists, so say so instead.
            message = (
                f"cannot create {where} for image {image}: the name is taken by a model "
                f"with image {dig(squatter, 'spec', 'image')}"
            )
            out.block(
                ConditionType.MODEL_RESOLVED,
                AIMStatus.FAILED,
                Reason.MODEL_NAME_TAKEN,
                message,
            )
            return
        try:
            self._client.create(resource_of(kind.RESOURCE), body, namespace=model_ns)
        except AlreadyExists:
            # Another reconcile (or a cache that has not caught up) created it: same object.
            log.debug("auto model already exists", model=name)
        else:
            log.info("auto model created", model=name, scope=str(scope), image=image)
            self._ctx.recorder.event(
                raw, EventType.NORMAL, Reason.MODEL_CREATED, f"created {where} for image {image}"
            )
        message = f"model {name} is Pending: {where} created for image {image}"
        out.block(ConditionType.MODEL_RESOLVED, AIMStatus.PENDING, Reason.MODEL_CREATED, message)

    # -- template -------------------------------------------------------------------------

    def _resolve_template(
        self, service: AIMService, model: AnyModel, out: Outcome
    ) -> AnyTemplate | None:
        namespace = service.metadata.namespace or ""
        name = model.metadata.name
        selection = select_template(
            service,
            model,
            get_namespaced=self._ns_template,
            get_cluster=self._cl_template,
            namespaced_templates=[
                self.templates.decode(t, AIMServiceTemplate.model_validate)
                for t in self.templates.list(namespace)
                if dig(t, "spec", "modelName") == name
            ],
            cluster_templates=[
                self.cluster_templates.decode(t, AIMClusterServiceTemplate.model_validate)
                for t in self.cluster_templates.list()
                if dig(t, "spec", "modelName") == name
            ],
            fleet=self._fleet.inventory(),
        )
        out.template_candidates = selection.candidates_dicts() or None
        template = selection.template
        if template is not None:
            out.resolved_template = resolved_reference(template)
        if selection.ready:
            out.ok(ConditionType.TEMPLATE_RESOLVED, selection.reason, selection.message)
            return template
        if selection.reason == Reason.TEMPLATE_NOT_READY and template is not None:
            state = template.status.status
            status = state if state in (AIMStatus.FAILED, AIMStatus.DEGRADED) else AIMStatus.PENDING
        elif selection.reason == Reason.TEMPLATE_NOT_AVAILABLE:
            status = AIMStatus.PENDING  # proceeds by itself when a node with its GPUs joins
        elif selection.reason == Reason.NO_RUNNABLE_TEMPLATE and selection.candidates:
            status = AIMStatus.PENDING  # templates exist: on their way, or waiting for GPUs
        else:
            status = AIMStatus.DEGRADED  # nothing to wait for: a template must be created
        out.block(ConditionType.TEMPLATE_RESOLVED, status, selection.reason, selection.message)
        return None

    # -- workload -------------------------------------------------------------------------

    def _run_workload(
        self,
        service: AIMService,
        model: AnyModel,
        template: AnyTemplate,
        runtime: RuntimeResolution,
        out: Outcome,
    ) -> None:
        resources = resolved_resources(service=service, template=template, model=model)
        out.resolved_resources = resources.to_dict()
        inputs = workload_inputs(
            service,
            model,
            template,
            runtime=runtime.spec,
            resources=out.resolved_resources,
            fleet=self._fleet.inventory(),
        )
        namespace, name = inputs.namespace, inputs.name
        desired_svc = with_applied_hash(cluster_ip_service(inputs))
        desired_dep = with_applied_hash(deployment(inputs))

        cached_dep = self.deployments.get(name, namespace)
        cached_svc = self.workload_services.get(name, namespace)
        for cached, kind in ((cached_dep, "Deployment"), (cached_svc, "Service")):
            if cached is not None and not owned_by(cached, inputs.owner_uid):
                message = f"{kind} {namespace}/{name} exists and is not owned by this AIMService"
                out.block(
                    ConditionType.WORKLOAD_READY,
                    AIMStatus.FAILED,
                    Reason.WORKLOAD_CONFLICT,
                    message,
                )
                return
        if needs_apply(cached_svc, desired_svc):
            self._client.apply(SERVICE, desired_svc, field_manager=FIELD_MANAGER, force=True)
        current = cached_dep
        if needs_apply(cached_dep, desired_dep):
            current = self._client.apply(
                DEPLOYMENT, desired_dep, field_manager=FIELD_MANAGER, force=True
            )
        assert current is not None
        state = deployment_state(current)
        if state.available:
            out.ok(ConditionType.WORKLOAD_READY, Reason.WORKLOAD_READY, state.message)
        elif state.failed:
            out.block(
                ConditionType.WORKLOAD_READY,
                AIMStatus.DEGRADED,
                Reason.WORKLOAD_FAILED,
                state.message,
            )
        else:
            out.block(
                ConditionType.WORKLOAD_READY,
                AIMStatus.PROGRESSING,
                Reason.WORKLOAD_PROGRESSING,
                f"waiting for {state.message}",
            )

    # -- status ---------------------------------------------------------------------------

    def _write_status(self, raw: Object, service: AIMService, out: Outcome) -> None:
        new = service_status(service, out, wall_now(self._ctx.clock))
        new_dict = new.to_dict()
        if new_dict == AIMServiceStatus.model_validate(raw.get("status") or {}).to_dict():
            return
        body = status_apply_body(service, new_dict)
        self._client.apply_status(_SERVICE, body, field_manager=FIELD_MANAGER, force=True)
        if service.status.status != new.status or not raw.get("status"):
            self._event_for(raw, out)

    def _event_for(self, raw: Object, out: Outcome) -> None:
        reason, message = out.blocked or (str(Reason.READY), READY_MESSAGE)
        warning = out.status in (AIMStatus.FAILED, AIMStatus.DEGRADED)
        event_type = EventType.WARNING if warning else EventType.NORMAL
        self._ctx.recorder.event(raw, event_type, str(reason), f"{out.status}: {message}")


# --------------------------------------------------------------------------- wiring


def setup(ctx: Context) -> list[Controller]:
    reconciler = ServiceReconciler(ctx)
    inf = ctx.informers
    services = inf.informer(AIMService.RESOURCE, indexers=service_indexers())
    by_index = reconciler.services.by_index

    controller = Controller(
        CONTROLLER_NAME,
        reconciler,
        workers=ctx.settings.workers,
        clock=ctx.clock,
        metrics=ctx.metrics,
    )
    queue = controller.queue
    registrations = [services.add_event_handler(EnqueueRequestForObject(queue))]
    mapped: tuple[tuple[Any, Any], ...] = (
        (AIMModel.RESOURCE, for_model(by_index)),
        (AIMClusterModel.RESOURCE, for_model(by_index)),
        (AIMServiceTemplate.RESOURCE, for_template(by_index)),
        (AIMClusterServiceTemplate.RESOURCE, for_template(by_index)),
        (AIMRuntimeConfig.RESOURCE, for_runtime_config(by_index)),
        (AIMClusterRuntimeConfig.RESOURCE, for_runtime_config(by_index)),
    )
    informers = [services]
    for kind, fn in mapped:
        informer = inf.informer(kind)
        informers.append(informer)
        registrations.append(informer.add_event_handler(EnqueueRequestsFromMapFunc(queue, fn)))
    workload_kinds: tuple[Resource, ...] = (DEPLOYMENT, SERVICE)
    for res in workload_kinds:
        informer = inf.informer(res, label_selector=_WORKLOAD_SELECTOR)
        informers.append(informer)
        owner = EnqueueRequestForOwner(
            queue, owner_api_version=AIMService.RESOURCE.api_version, owner_kind="AIMService"
        )
        registrations.append(informer.add_event_handler(owner))
    fleet = ctx.fleet()

    def on_fleet_change(change: FleetChange) -> None:
        # Rare (a GPU model appears or goes, a largest node or a product name changes): every
        # service is looked at again; one whose workload and status do not move writes nothing.
        for obj in reconciler.services.list():
            queue.add(request_for(obj))

    fleet.subscribe(on_fleet_change)
    controller.add_has_synced(fleet.has_synced)
    for informer in informers:
        controller.add_has_synced(informer.has_synced)
    for registration in registrations:
        controller.add_has_synced(registration.has_synced)
    return [controller]
