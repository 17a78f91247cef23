"""Template status (SPEC §5): every template, auto-generated or hand-written, is reconciled.

For a template (``AIMClusterServiceTemplate``: request namespace ``""``; ``AIMServiceTemplate``:
its namespace) the reconciler looks up its model — ``AIMModel`` in the template's namespace, then
``AIMClusterModel``; a cluster template sees cluster models only — resolves its runtime config,
and writes the template's status: ``resolvedModel``, ``resolvedRuntimeConfig``,
``profile.metadata`` {gpu, gpu_count, metric, precision}, ``status`` and the conditions
``ModelResolved``, ``RuntimeResolved`` and ``Ready``.

Status, first matching rule wins (``Ready`` condition reason in brackets):

* no such model → ``Degraded`` (``ModelNotFound``, naming where it looked);
* the model is ``Failed`` → ``Degraded`` (``ModelFailed``, with the model's own Ready message);
* the explicitly named runtime config is missing → ``Degraded`` (``RuntimeConfigMissing``);
* the model was never reconciled (no status yet) → ``Pending`` (``ModelNotReady``);
* the model's discovery is still running or retrying (``MetadataExtracted`` Unknown, or reason
  ``DiscoveryRunning`` / ``DiscoveryRetrying``) → ``Progressing`` (``ModelNotReady``);
* the template's GPUs are on no schedulable node (condition ``GPUAvailable`` False, SPEC §8)
  → ``NotAvailable`` (``GPUNotInCluster`` / ``NotEnoughGPUsPerNode``, naming what it needs and
  what the cluster has);
* otherwise → ``Ready`` (``Ready``). The model's own ``status.status`` being ``Progressing`` or
  ``Degraded`` does not hold a template back: the model aggregates *its templates'* statuses,
  so depending on it here would be circular.

``GPUAvailable`` is computed for every template from the shared :class:`~aimctrl.controllers.
fleet.Fleet` (a template whose ``gpuSelector.resourceName`` is not ``amd.com/gpu`` is not
checked: True, ``GPUNotChecked``). When the fleet's shape moves for a GPU model, the templates
of that model (index ``gpuModel``), the templates naming no model, and the templates currently
not available (index ``gpuUnavailable``: their messages name the whole fleet) are enqueued —
never a scan of every template.

Guarantees: the status is written with server-side apply on the status subresource, field
manager ``aimctrl-template``, only when the computed status differs from the cached one (a
converged template causes no writes); ``lastTransitionTime`` moves only when a condition flips;
events are emitted on transitions of ``status`` into ``Ready`` or ``Degraded`` only. A template
recovers by itself: model and runtime-config events are mapped back to the templates naming
them (indices ``modelName`` and ``runtimeConfigName`` on the template informers); a model
update wakes its templates only when :func:`model_view`, the part of the model a template's status
is computed from, changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from aimctrl.api.conditions import find
from aimctrl.api.v1alpha1.common import GROUP
from aimctrl.api.v1alpha1.enums import AIMStatus, ConditionStatus, ConditionType, Reason
from aimctrl.api.v1alpha1.model import AIMClusterModel, AIMModel
from aimctrl.api.v1alpha1.runtimeconfig import AIMClusterRuntimeConfig, AIMRuntimeConfig
from aimctrl.api.v1alpha1.template import (
    AIMClusterServiceTemplate,
    AIMServiceTemplate,
    AIMServiceTemplateStatus,
    Profile,
    ProfileMetadata,
)
from aimctrl.controllers.context import (
    Context,
    EventType,
    cluster_getter,
    field_manager,
    namespaced_getter,
    resource_of,
)
from aimctrl.controllers.fleet import RBAC as FLEET_RBAC
from aimctrl.controllers.fleet import Fleet, FleetChange
from aimctrl.controllers.status import WriteMemo, set_condition, status_apply_body, wall_now
from aimctrl.machinery.controller import Controller
from aimctrl.machinery.handler import (
    EnqueueRequestForObject,
    EnqueueRequestsFromMapFunc,
    request_for,
)
from aimctrl.machinery.lister import Lister
from aimctrl.machinery.predicate import ViewChanged
from aimctrl.machinery.reconcile import Request, Result
from aimctrl.machinery.store import Object
from aimctrl.rbac import PolicyRule
from aimctrl.resolve.gpus import GPU_RESOURCE, Availability, availability, normalise_model
from aimctrl.resolve.models import FoundModel, lookup_model, resolved_reference
from aimctrl.resolve.runtimeconfig import DEFAULT_RUNTIME_CONFIG, resolve_runtime_config
from aimctrl.resolve.templates import AnyModel, AnyTemplate, template_profile

__all__ = [
    "CONTROLLER",
    "FIELD_MANAGER",
    "GPU_MODEL_INDEX",
    "GPU_UNAVAILABLE_INDEX",
    "MODEL_NAME_INDEX",
    "RBAC",
    "RUNTIME_CONFIG_INDEX",
    "TemplateReconciler",
    "gpu_model_index",
    "gpu_unavailable_index",
    "model_name_index",
    "model_view",
    "runtime_config_index",
    "setup",
]

log = structlog.get_logger(__name__)

CONTROLLER = "template"
FIELD_MANAGER = field_manager(CONTROLLER)
MODEL_NAME_INDEX = "modelName"
RUNTIME_CONFIG_INDEX = "runtimeConfigName"
GPU_MODEL_INDEX = "gpuModel"
GPU_UNAVAILABLE_INDEX = "gpuUnavailable"

RBAC: tuple[PolicyRule, ...] = (
    PolicyRule(
        api_groups=(GROUP,),
        resources=("aimclusterservicetemplates", "aimservicetemplates"),
        verbs=("get", "list", "watch"),
    ),
    PolicyRule(
        api_groups=(GROUP,),
        resources=("aimclusterservicetemplates/status", "aimservicetemplates/status"),
        verbs=("patch",),
    ),
    PolicyRule(
        api_groups=(GROUP,),
        resources=("aimclustermodels", "aimmodels"),
        verbs=("get", "list", "watch"),
    ),
    PolicyRule(
        api_groups=(GROUP,),
        resources=("aimclusterruntimeconfigs", "aimruntimeconfigs"),
        verbs=("get", "list", "watch"),
    ),
    PolicyRule(api_groups=("",), resources=("events",), verbs=("create", "patch")),
    *FLEET_RBAC,
)

_OWN_CONDITIONS = (
    ConditionType.MODEL_RESOLVED,
    ConditionType.RUNTIME_RESOLVED,
    ConditionType.GPU_AVAILABLE,
    ConditionType.READY,
)
_DISCOVERING = frozenset({Reason.DISCOVERY_RUNNING, Reason.DISCOVERY_RETRYING})


def model_name_index(obj: Object) -> list[str]:
    """Templates by ``spec.modelName``."""
    name = (obj.get("spec") or {}).get("modelName")
    return [name] if name else []


def runtime_config_index(obj: Object) -> list[str]:
    """Templates by ``spec.runtimeConfigName`` (unset: ``default``)."""
    return [(obj.get("spec") or {}).get("runtimeConfigName") or DEFAULT_RUNTIME_CONFIG]


def gpu_model_index(obj: Object) -> list[str]:
    """Templates by the GPU model they need (upper-cased; ``""`` for none): ``spec.gpuSelector
    .model``, else ``status.profile.metadata.gpu``."""
    selector = (obj.get("spec") or {}).get("gpuSelector") or {}
    profile = ((obj.get("status") or {}).get("profile") or {}).get("metadata") or {}
    return [normalise_model(selector.get("model") or profile.get("gpu"))]


def gpu_unavailable_index(obj: Object) -> list[str]:
    """Templates whose ``GPUAvailable`` condition is False, under ``"true"``."""
    for c in (obj.get("status") or {}).get("conditions") or ():
        if c.get("type") == ConditionType.GPU_AVAILABLE.value and c.get("status") == "False":
            return ["true"]
    return []


def template_gpus(template: AnyTemplate, profile: ProfileMetadata) -> tuple[str | None, int | None]:
    """(GPU model, GPUs per replica) a template needs: its gpuSelector, else its profile."""
    selector = template.spec.gpu_selector
    model = (selector.model if selector else None) or profile.gpu
    count = (selector.count if selector else None) or profile.gpu_count
    return model, count


def gpu_availability(template: AnyTemplate, profile: ProfileMetadata, fleet: Fleet) -> Availability:
    """``GPUAvailable`` of one template against the current fleet."""
    selector = template.spec.gpu_selector
    resource = selector.resource_name if selector else GPU_RESOURCE
    if resource != GPU_RESOURCE:
        message = f"GPUs of resource {resource} are not inventoried; only {GPU_RESOURCE} is"
        return Availability(True, Reason.GPU_NOT_CHECKED.value, message)
    model, count = template_gpus(template, profile)
    return availability(model, count, fleet.inventory())


@dataclass(frozen=True)
class _Verdict:
    status: AIMStatus
    reason: Reason
    message: str


def _describe(found: FoundModel) -> str:
    meta = found.model.metadata
    where = f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name
    return f"{found.kind} {where}"


def _model_verdict(template: AnyTemplate, found: FoundModel | None) -> _Verdict:
    name = template.spec.model_name
    namespace = template.metadata.namespace
    if found is None:
        where = (
            f'no AIMModel "{name}" in namespace "{namespace}" and no AIMClusterModel "{name}"'
            if namespace
            else f'no AIMClusterModel "{name}"'
        )
        return _Verdict(AIMStatus.DEGRADED, Reason.MODEL_NOT_FOUND, f"model not found: {where}")
    model: AnyModel = found.model
    conditions = model.status.conditions
    if model.status.status == AIMStatus.FAILED:
        ready = find(conditions, ConditionType.READY)
        detail = f": {ready.message}" if ready and ready.message else ""
        return _Verdict(
            AIMStatus.DEGRADED, Reason.MODEL_FAILED, f"{_describe(found)} has failed{detail}"
        )
    if model.status.observed_generation is None and not conditions:
        return _Verdict(
            AIMStatus.PENDING,
            Reason.MODEL_NOT_READY,
            f"waiting for {_describe(found)} to be reconciled",
        )
    extracted = find(conditions, ConditionType.METADATA_EXTRACTED)
    if extracted is not None and (
        extracted.status == ConditionStatus.UNKNOWN or extracted.reason in _DISCOVERING
    ):
        return _Verdict(
            AIMStatus.PROGRESSING,
            Reason.MODEL_NOT_READY,
            f"{_describe(found)} is still being discovered",
        )
    return _Verdict(AIMStatus.READY, Reason.READY, f"model {_describe(found)} is available")


def model_view(model: Object) -> tuple[object, ...]:
    """The part of a model that its templates' statuses are computed from (:func:`_model_verdict`,
    :func:`~aimctrl.resolve.models.resolved_reference`, :func:`template_profile`): a model
    update outside it (its ``Ready`` moving from Progressing to Ready, another controller's
    condition) does not wake the templates naming it."""
    meta = model.get("metadata") or {}
    status = model.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or () if isinstance(c, dict)}
    extracted = conditions.get(ConditionType.METADATA_EXTRACTED.value) or {}
    failed = status.get("status") == AIMStatus.FAILED.value
    ready = conditions.get(ConditionType.READY.value) or {}
    return (
        meta.get("uid"),
        failed,
        ready.get("message") if failed else None,
        status.get("observedGeneration") is None and not conditions,
        extracted.get("status"),
        extracted.get("reason"),
        status.get("imageMetadata"),
    )


class TemplateReconciler:
    """Writes the status of one template from its model and runtime config."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._written = WriteMemo()
        self._fleet = ctx.fleet()
        inf = ctx.informers
        self._templates = inf.lister(AIMServiceTemplate.RESOURCE)
        self._cluster_templates = inf.lister(AIMClusterServiceTemplate.RESOURCE)
        self._get_model = namespaced_getter(inf.lister(AIMModel.RESOURCE), AIMModel)
        self._get_cluster_model = cluster_getter(
            inf.lister(AIMClusterModel.RESOURCE), AIMClusterModel
        )
        self._get_config = namespaced_getter(
            inf.lister(AIMRuntimeConfig.RESOURCE), AIMRuntimeConfig
        )
        self._get_cluster_config = cluster_getter(
            inf.lister(AIMClusterRuntimeConfig.RESOURCE), AIMClusterRuntimeConfig
        )

    def reconcile(self, request: Request) -> Result:
        template: AnyTemplate
        if request.namespace:
            raw = self._templates.get(request.name, request.namespace)
            if raw is None:
                return Result()
            template = self._templates.decode(raw, AIMServiceTemplate.model_validate)
        else:
            raw = self._cluster_templates.get(request.name)
            if raw is None:
                return Result()
            template = self._cluster_templates.decode(raw, AIMClusterServiceTemplate.model_validate)
        if template.metadata.deletion_timestamp is not None:
            return Result()

        found = lookup_model(
            template.spec.model_name,
            request.namespace,
            get_namespaced=self._get_model,
            get_cluster=self._get_cluster_model,
        )
        runtime = resolve_runtime_config(
            consumer_namespace=request.namespace,
            name=template.spec.runtime_config_name,
            get_namespaced=self._get_config,
            get_cluster=self._get_cluster_config,
        )
        verdict = _model_verdict(template, found)
        if runtime.blocking and verdict.status != AIMStatus.DEGRADED:
            verdict = _Verdict(AIMStatus.DEGRADED, Reason.RUNTIME_CONFIG_MISSING, runtime.message)
        profile = ProfileMetadata.model_validate(
            template_profile(template, found.model if found else None)
        )
        gpus = gpu_availability(template, profile, self._fleet)
        if verdict.status == AIMStatus.READY and not gpus.available:
            verdict = _Verdict(AIMStatus.NOT_AVAILABLE, Reason(gpus.reason), gpus.message)

        generation = template.metadata.generation
        status = AIMServiceTemplateStatus(
            observed_generation=generation,
            status=verdict.status,
            conditions=[c.model_copy(deep=True) for c in template.status.conditions],
            resolved_model=resolved_reference(found.model) if found else None,
            resolved_runtime_config=runtime.reference,
            profile=Profile(metadata=profile),
        )
        now = wall_now(self._ctx.clock)
        model_resolved = (
            (ConditionStatus.TRUE, Reason.MODEL_RESOLVED, f"using {_describe(found)}")
            if found
            else (ConditionStatus.FALSE, Reason.MODEL_NOT_FOUND, verdict.message)
        )
        ready = ConditionStatus.TRUE if verdict.status == AIMStatus.READY else ConditionStatus.FALSE
        for type_, (condition_status, reason, message) in (
            (ConditionType.MODEL_RESOLVED, model_resolved),
            (ConditionType.RUNTIME_RESOLVED, (runtime.status, runtime.reason, runtime.message)),
            (
                ConditionType.GPU_AVAILABLE,
                (
                    ConditionStatus.TRUE if gpus.available else ConditionStatus.FALSE,
                    gpus.reason,
                    gpus.message,
                ),
            ),
            (ConditionType.READY, (ready, verdict.reason, verdict.message)),
        ):
            set_condition(
                status.conditions,
                type_,
                condition_status,
                reason=reason,
                message=message,
                generation=generation,
                now=now,
            )
        self._write(template, raw, status)
        return Result()

    # -- write ----------------------------------------------------------------------------------

    def _write(self, template: AnyTemplate, raw: Object, status: AIMServiceTemplateStatus) -> None:
        owned = status.model_copy(
            update={"conditions": [c for c in status.conditions if c.type in _OWN_CONDITIONS]}
        )
        body_status = owned.to_dict()
        cached = template.status.model_copy(
            update={
                "conditions": [c for c in template.status.conditions if c.type in _OWN_CONDITIONS]
            }
        )
        if body_status == cached.to_dict():
            return
        if not self._written.apply_once(
            template,
            body_status,
            lambda: self._ctx.client.apply_status(
                resource_of(type(template).RESOURCE),
                status_apply_body(template, body_status),
                field_manager=FIELD_MANAGER,
                force=True,
            ),
        ):
            return
        old, new = template.status.status, status.status
        had_status = "status" in (raw.get("status") or {})
        if new != old or not had_status:
            ready = find(status.conditions, ConditionType.READY)
            assert ready is not None  # set above
            # A new template's first status is routine (thousands at once when models are
            # created in bulk): debug; a status that moved is worth a line at info.
            (log.info if had_status else log.debug)(
                "template status changed", template=template.metadata.name, status=new
            )
            if new == AIMStatus.READY and had_status:
                # Becoming Ready after waiting or failing is news; a new template whose first
                # status is Ready (thousands at once when models are created in bulk) is not.
                self._ctx.recorder.event(raw, EventType.NORMAL, "TemplateReady", ready.message)
            elif new == AIMStatus.DEGRADED:
                self._ctx.recorder.event(raw, EventType.WARNING, ready.reason, ready.message)
            elif new == AIMStatus.NOT_AVAILABLE and had_status:
                reason = Reason.TEMPLATE_NOT_AVAILABLE.value
                self._ctx.recorder.event(raw, EventType.NORMAL, reason, ready.message)


# -- wiring -------------------------------------------------------------------------------------


def _requests(objs: list[Object]) -> list[Request]:
    return [request_for(o) for o in objs]


def _mapper(
    templates: Lister, cluster_templates: Lister, index: str
) -> Callable[[Object], list[Request]]:
    """Namespaced referent → templates of its namespace; cluster referent → every template
    naming it (namespaced templates fall back to cluster models and configs)."""

    def requests(obj: Object) -> list[Request]:
        meta = obj.get("metadata") or {}
        name, namespace = meta.get("name") or "", meta.get("namespace") or ""
        if namespace:
            found = [
                t
                for t in templates.by_index(index, name)
                if (t.get("metadata") or {}).get("namespace") == namespace
            ]
            return _requests(found)
        return _requests(cluster_templates.by_index(index, name) + templates.by_index(index, name))

    return requests


def setup(ctx: Context) -> list[Controller]:
    """Watches: templates (self), models and runtime configs (→ templates naming them)."""
    controller = Controller(
        CONTROLLER,
        TemplateReconciler(ctx),
        workers=ctx.settings.workers,
        clock=ctx.clock,
        metrics=ctx.metrics,
    )
    queue = controller.queue
    inf = ctx.informers
    indexers = {
        MODEL_NAME_INDEX: model_name_index,
        RUNTIME_CONFIG_INDEX: runtime_config_index,
        GPU_MODEL_INDEX: gpu_model_index,
        GPU_UNAVAILABLE_INDEX: gpu_unavailable_index,
    }
    templates = inf.informer(AIMServiceTemplate.RESOURCE, indexers=indexers)
    cluster_templates = inf.informer(AIMClusterServiceTemplate.RESOURCE, indexers=indexers)
    by_model = _mapper(templates.lister(), cluster_templates.lister(), MODEL_NAME_INDEX)
    by_config = _mapper(templates.lister(), cluster_templates.lister(), RUNTIME_CONFIG_INDEX)
    model_changed = ViewChanged(model_view)
    registrations = [
        templates.add_event_handler(EnqueueRequestForObject(queue)),
        cluster_templates.add_event_handler(EnqueueRequestForObject(queue)),
        inf.informer(AIMModel.RESOURCE).add_event_handler(
            EnqueueRequestsFromMapFunc(queue, by_model, predicates=(model_changed,))
        ),
        inf.informer(AIMClusterModel.RESOURCE).add_event_handler(
            EnqueueRequestsFromMapFunc(queue, by_model, predicates=(model_changed,))
        ),
        inf.informer(AIMRuntimeConfig.RESOURCE).add_event_handler(
            EnqueueRequestsFromMapFunc(queue, by_config)
        ),
        inf.informer(AIMClusterRuntimeConfig.RESOURCE).add_event_handler(
            EnqueueRequestsFromMapFunc(queue, by_config)
        ),
    ]
    fleet = ctx.fleet()
    fleet.subscribe(_on_fleet_change(queue, templates.lister(), cluster_templates.lister()))
    controller.add_has_synced(fleet.has_synced)
    for registration in registrations:
        controller.add_has_synced(registration.has_synced)
    return [controller]


def _on_fleet_change(
    queue: Any, templates: Lister, cluster_templates: Lister
) -> Callable[[FleetChange], None]:
    """Enqueue the templates a fleet change can affect (see the module docstring)."""

    def enqueue(change: FleetChange) -> None:
        keys = [*sorted(change.models), ""]
        for lister in (cluster_templates, templates):
            for key in keys:
                for t in lister.by_index(GPU_MODEL_INDEX, key):
                    queue.add(request_for(t))
            for t in lister.by_index(GPU_UNAVAILABLE_INDEX, "true"):
                queue.add(request_for(t))

    return enqueue
