"""Template choice for a service (SPEC §6): pure functions, no I/O, deterministic.

Order of precedence:

1. ``spec.templateRef``: the ``AIMServiceTemplate`` of that name in the service's namespace,
   else the ``AIMClusterServiceTemplate``. Absent → ``TemplateNotFound``. A template that runs a
   different model than the service resolved is refused (``TemplateNotFound``, message says why).
2. the model's ``spec.defaultServiceTemplate``, looked up the same way. Absent or for another
   model → noted in the candidates and automatic selection runs instead.
3. the best runnable template of the model. Only templates that resolve to *this* model
   count: a namespace template naming the model, and a cluster template naming it only when the
   model is the cluster model (an ``AIMModel`` shadows the cluster model its cluster templates
   run). Of those, only ``Ready`` ones (never ``NotAvailable``: their GPUs are on no schedulable
   node), then only those matching ``spec.templateSelector`` (metric, precision, GPU model).
   Ranking, first difference decides: namespace before cluster; GPU in :data:`~aimctrl.resolve.
   gpus.GPU_TIER` (newest first, others last); latency before throughput (unset last);
   precision in :data:`PRECISION_ORDER` (lower first, unset last); name. GPU, metric and
   precision come from the spec, else from ``status.profile.metadata``. No runnable template →
   ``NoRunnableTemplate``, naming the GPUs the model's templates need and those the cluster has.

A template named explicitly (1 or 2) is chosen even when not Ready (``TemplateNotReady``, or
``TemplateNotAvailable`` when its GPUs are missing): the service waits for it instead of
silently running something else. Templates being deleted are never chosen. Every template
considered appears in ``candidates`` with the reason it was or was not chosen, in preference
order (chosen first).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aimctrl.api.v1alpha1.enums import AIMStatus, Metric, Precision, Reason, ResolvedScope
from aimctrl.api.v1alpha1.model import AIMClusterModel
from aimctrl.api.v1alpha1.service import AIMService, TemplateCandidate, TemplateSelector
from aimctrl.api.v1alpha1.template import AIMClusterServiceTemplate, AIMServiceTemplate
from aimctrl.resolve.gpus import Inventory, gpu_tier, normalise_model
from aimctrl.resolve.templates import AnyModel, AnyTemplate, gpu_message, template_state

__all__ = [
    "METRIC_ORDER",
    "PRECISION_ORDER",
    "TemplateSelection",
    "lookup_template",
    "select_template",
]

METRIC_ORDER: tuple[str, ...] = (Metric.LATENCY, Metric.THROUGHPUT)
"""Preferred metric first; an unset or unknown metric ranks after all of these."""
PRECISION_ORDER: tuple[str, ...] = (
    Precision.FP4,
    Precision.INT4,
    Precision.FP8,
    Precision.INT8,
    Precision.FP16,
    Precision.BF16,
    Precision.FP32,
    Precision.AUTO,
)
"""Lower precision first (less memory, faster); unset or unknown ranks after all of these."""

GetNamespacedTemplate = Callable[[str, str], AIMServiceTemplate | None]
"""(namespace, name) → the cached AIMServiceTemplate, or None."""
GetClusterTemplate = Callable[[str], AIMClusterServiceTemplate | None]
"""name → the cached AIMClusterServiceTemplate, or None."""

_RankKey = tuple[int, int, int, int, str]


@dataclass(frozen=True)
class TemplateSelection:
    """The template a service runs (or None), why, and every candidate considered."""

    template: AnyTemplate | None
    reason: Reason
    """TemplateResolved, TemplateNotReady (chosen but not Ready), TemplateNotAvailable (chosen
    but its GPUs are missing), TemplateNotFound or NoRunnableTemplate."""
    message: str
    candidates: tuple[TemplateCandidate, ...] = ()

    @property
    def ready(self) -> bool:
        """A template was chosen and it is Ready."""
        return self.reason == Reason.TEMPLATE_RESOLVED

    def candidates_dicts(self) -> list[dict[str, Any]]:
        """``status.templateCandidates`` as JSON."""
        return [c.to_dict() for c in self.candidates]


def _scope(template: AnyTemplate) -> ResolvedScope:
    if isinstance(template, AIMServiceTemplate):
        return ResolvedScope.NAMESPACE
    return ResolvedScope.CLUSTER


def _describe(template: AnyTemplate) -> str:
    if isinstance(template, AIMServiceTemplate):
        return f"AIMServiceTemplate {template.metadata.namespace}/{template.metadata.name}"
    return f"AIMClusterServiceTemplate {template.metadata.name}"


def _candidate(template: AnyTemplate, *, chosen: bool, reason: str) -> TemplateCandidate:
    return TemplateCandidate(
        name=template.metadata.name, scope=_scope(template), chosen=chosen, reason=reason
    )


def lookup_template(
    name: str,
    namespace: str,
    *,
    get_namespaced: GetNamespacedTemplate,
    get_cluster: GetClusterTemplate,
) -> tuple[AnyTemplate | None, AIMClusterServiceTemplate | None]:
    """(found, shadowed): the namespace template of that name, else the cluster template;
    ``shadowed`` is the cluster template hidden by a namespace template of the same name."""
    cluster = get_cluster(name)
    namespaced = get_namespaced(namespace, name) if namespace else None
    if namespaced is not None:
        return namespaced, cluster
    return cluster, None


def _metric(template: AnyTemplate) -> str | None:
    if template.spec.metric:
        return template.spec.metric.value
    profile = template.status.profile.metadata if template.status.profile else None
    return profile.metric.lower() if profile and profile.metric else None


def _precision(template: AnyTemplate) -> str | None:
    if template.spec.precision:
        return template.spec.precision.value
    profile = template.status.profile.metadata if template.status.profile else None
    return profile.precision.lower() if profile and profile.precision else None


def _gpu(template: AnyTemplate) -> str | None:
    selector = template.spec.gpu_selector
    if selector and selector.model:
        return normalise_model(selector.model)
    profile = template.status.profile.metadata if template.status.profile else None
    return normalise_model(profile.gpu) if profile and profile.gpu else None


def _gpu_count(template: AnyTemplate) -> int | None:
    selector = template.spec.gpu_selector
    if selector and selector.count:
        return selector.count
    profile = template.status.profile.metadata if template.status.profile else None
    return profile.gpu_count if profile and profile.gpu_count else None


def _needs(template: AnyTemplate) -> str:
    """``8 x MI355X``, ``MI300X``, ``4 GPU(s)`` or ``no GPU``."""
    gpu, count = _gpu(template), _gpu_count(template)
    if gpu:
        return f"{count} x {gpu}" if count else gpu
    return f"{count} GPU(s)" if count else "no GPU"


def _index(order: tuple[str, ...], value: str | None) -> int:
    return order.index(value) if value in order else len(order)


def _rank_key(template: AnyTemplate) -> _RankKey:
    return (
        0 if _scope(template) == ResolvedScope.NAMESPACE else 1,
        gpu_tier(_gpu(template)),
        _index(METRIC_ORDER, _metric(template)),
        _index(PRECISION_ORDER, _precision(template)),
        template.metadata.name,
    )


def _selector_mismatch(template: AnyTemplate, selector: TemplateSelector | None) -> str | None:
    """Why ``template`` does not match ``spec.templateSelector`` (None: it matches)."""
    if selector is None:
        return None
    wanted: list[tuple[str, str | None, str | None]] = [
        ("metric", selector.metric.value if selector.metric else None, _metric(template)),
        (
            "precision",
            selector.precision.value if selector.precision else None,
            _precision(template),
        ),
        ("gpuModel", normalise_model(selector.gpu_model) or None, _gpu(template)),
    ]
    for field, want, have in wanted:
        if want is not None and want != have:
            return f"templateSelector: wants {field} {want}, template has {have or 'none'}"
    return None


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _why_after(loser: AnyTemplate, winner: AnyTemplate) -> str:
    """The first ranking criterion on which ``loser`` lost to ``winner``."""
    lk, wk = _rank_key(loser), _rank_key(winner)
    if lk[0] != wk[0]:
        return "cluster after namespace"
    if lk[1] != wk[1]:
        return f"{_gpu(loser) or 'no GPU model'} after {_gpu(winner)}"
    if lk[2] != wk[2]:
        return f"{_metric(loser) or 'no metric'} after {_metric(winner)}"
    if lk[3] != wk[3]:
        return f"{_precision(loser) or 'no precision'} after {_precision(winner)}"
    return f"name after {winner.metadata.name}"


def _explicit(
    template: AnyTemplate,
    *,
    via: str,
    shadowed: AIMClusterServiceTemplate | None,
) -> TemplateSelection:
    extra: tuple[TemplateCandidate, ...] = ()
    if shadowed is not None:
        reason = f"shadowed by {_describe(template)}"
        extra = (_candidate(shadowed, chosen=False, reason=reason),)
    state = template_state(template)
    if template.metadata.deletion_timestamp is not None:
        state = "being deleted"
    if state == AIMStatus.READY:
        chosen = _candidate(template, chosen=True, reason=f"chosen: {via}")
        message = f"{_describe(template)} ({via})"
        return TemplateSelection(template, Reason.TEMPLATE_RESOLVED, message, (chosen, *extra))
    if template.status.status == AIMStatus.NOT_AVAILABLE:
        why = f"NotAvailable: needs {_needs(template)}"
        chosen = _candidate(template, chosen=True, reason=f"chosen: {via}; {why}")
        message = f"{_describe(template)} ({via}) cannot run here: {gpu_message(template)}"
        return TemplateSelection(template, Reason.TEMPLATE_NOT_AVAILABLE, message, (chosen, *extra))
    chosen = _candidate(template, chosen=True, reason=f"chosen: {via}; not Ready: {state}")
    message = f"waiting for {_describe(template)} ({via}): {state}"
    return TemplateSelection(template, Reason.TEMPLATE_NOT_READY, message, (chosen, *extra))


def _other_model(template: AnyTemplate, model: AnyModel | None) -> str | None:
    if model is None or template.spec.model_name == model.metadata.name:
        return None
    return f"runs model {template.spec.model_name}, not {model.metadata.name}"


def select_template(
    service: AIMService,
    model: AnyModel | None,
    *,
    get_namespaced: GetNamespacedTemplate,
    get_cluster: GetClusterTemplate,
    namespaced_templates: Iterable[AIMServiceTemplate],
    cluster_templates: Iterable[AIMClusterServiceTemplate],
    fleet: Inventory | None = None,
) -> TemplateSelection:
    """Choose the template ``service`` runs, given the model it resolved (None: not resolved).

    ``namespaced_templates`` may hold templates of any namespace and model;
    ``cluster_templates`` of any model: both are filtered here. ``fleet`` (the cluster's GPUs)
    is only quoted in the message when no template can run.
    """
    namespace = service.metadata.namespace or ""
    ref = service.spec.template_ref
    if ref:
        found, shadowed = lookup_template(
            ref, namespace, get_namespaced=get_namespaced, get_cluster=get_cluster
        )
        if found is None:
            message = (
                f"templateRef {ref!r}: no AIMServiceTemplate {namespace}/{ref} "
                f"and no AIMClusterServiceTemplate {ref}"
            )
            return TemplateSelection(None, Reason.TEMPLATE_NOT_FOUND, message)
        mismatch = _other_model(found, model)
        if mismatch:
            rejected = _candidate(found, chosen=False, reason=mismatch)
            message = f"templateRef {ref!r}: {_describe(found)} {mismatch}"
            return TemplateSelection(None, Reason.TEMPLATE_NOT_FOUND, message, (rejected,))
        return _explicit(found, via="templateRef", shadowed=shadowed)

    if model is None:
        return TemplateSelection(None, Reason.NO_RUNNABLE_TEMPLATE, "the model is not resolved")

    notes: list[TemplateCandidate] = []
    default = model.spec.default_service_template
    if default:
        found, shadowed = lookup_template(
            default, namespace, get_namespaced=get_namespaced, get_cluster=get_cluster
        )
        mismatch = _other_model(found, model) if found else None
        if found is not None and not mismatch:
            via = f"defaultServiceTemplate of {model.kind} {model.metadata.name}"
            return _explicit(found, via=via, shadowed=shadowed)
        why = mismatch or "not found"
        notes.append(
            TemplateCandidate(
                name=default,
                scope=_scope(found) if found else None,
                chosen=False,
                reason=f"defaultServiceTemplate {why}; selecting automatically",
            )
        )
    return _auto_select(
        model,
        namespace,
        namespaced_templates=namespaced_templates,
        cluster_templates=cluster_templates,
        notes=notes,
        selector=service.spec.template_selector,
        fleet=fleet or Inventory(),
    )


def _auto_select(
    model: AnyModel,
    namespace: str,
    *,
    namespaced_templates: Iterable[AIMServiceTemplate],
    cluster_templates: Iterable[AIMClusterServiceTemplate],
    notes: list[TemplateCandidate],
    selector: TemplateSelector | None,
    fleet: Inventory,
) -> TemplateSelection:
    name = model.metadata.name
    pool: list[AnyTemplate] = [
        t
        for t in namespaced_templates
        if t.metadata.namespace == namespace and t.spec.model_name == name
    ]
    excluded: list[TemplateCandidate] = []
    for ct in sorted(cluster_templates, key=lambda t: t.metadata.name):
        if ct.spec.model_name != name:
            continue
        if isinstance(model, AIMClusterModel):
            pool.append(ct)
        else:
            owner = f"AIMModel {model.metadata.namespace}/{name}"
            reason = f"runs AIMClusterModel {name}, shadowed by {owner}"
            excluded.append(_candidate(ct, chosen=False, reason=reason))

    ready: list[AnyTemplate] = []
    rejected: list[TemplateCandidate] = []
    for t in sorted(pool, key=_rank_key):
        mismatch = _selector_mismatch(t, selector)
        if t.metadata.deletion_timestamp is not None:
            rejected.append(_candidate(t, chosen=False, reason="being deleted"))
        elif t.status.status == AIMStatus.NOT_AVAILABLE:
            reason = f"NotAvailable: needs {_needs(t)}"
            rejected.append(_candidate(t, chosen=False, reason=reason))
        elif t.status.status != AIMStatus.READY:
            reason = f"not Ready: {template_state(t)}"
            rejected.append(_candidate(t, chosen=False, reason=reason))
        elif mismatch:
            rejected.append(_candidate(t, chosen=False, reason=mismatch))
        else:
            ready.append(t)

    if not ready:
        tail = tuple(notes + rejected + excluded)
        message = _no_runnable_message(name, pool, selector, fleet)
        return TemplateSelection(None, Reason.NO_RUNNABLE_TEMPLATE, message, tail)

    winner = ready[0]
    summary = ", ".join(
        p
        for p in (
            _scope(winner).value.lower(),
            _gpu(winner),
            _metric(winner),
            _precision(winner),
        )
        if p
    )
    ranked = [_candidate(winner, chosen=True, reason=f"chosen: best Ready template ({summary})")]
    for place, t in enumerate(ready[1:], start=2):
        reason = f"ranked {_ordinal(place)}: {_why_after(t, winner)}"
        ranked.append(_candidate(t, chosen=False, reason=reason))
    message = f"{_describe(winner)}: best of {len(ready)} runnable template(s) of model {name}"
    candidates = tuple(ranked + notes + rejected + excluded)
    return TemplateSelection(winner, Reason.TEMPLATE_RESOLVED, message, candidates)


def _no_runnable_message(
    model: str, pool: list[AnyTemplate], selector: TemplateSelector | None, fleet: Inventory
) -> str:
    """What the model's templates need, what the cluster has, and what is being waited for."""
    if not pool:
        return f"no templates for model {model}"
    needs = sorted({_needs(t) for t in pool})
    parts = [
        f"no runnable template for model {model}: its {len(pool)} template(s) need "
        f"{', '.join(needs)}; the cluster has {fleet.describe()}"
    ]
    waiting = [t for t in pool if t.status.status not in (AIMStatus.READY, AIMStatus.NOT_AVAILABLE)]
    if waiting:
        parts.append(f"{len(waiting)} not Ready yet")
    if selector is not None:
        wanted = selector.to_dict()
        parts.append("templateSelector " + ", ".join(f"{k}={v}" for k, v in sorted(wanted.items())))
    return "; ".join(parts)
