"""Template generation (SPEC §5): pure functions, no I/O.

Guarantees:

* :func:`template_name` is a valid RFC 1123 label (``[a-z0-9-]``, alphanumeric at both ends,
  at most 63 characters), depends only on the model name and the deployment's GPU model, GPU
  count, metric and precision, and reproduces the original AIM operator's names. The ``h4``
  suffix hashes the *unsanitised* inputs, so names that sanitising or truncating would make
  equal still differ (with 1 - 1/65536 probability).
* :func:`plan_templates` / :func:`desired_templates` return complete objects for server-side
  apply, sorted by name, one per distinct name. A deployment whose metric or precision the
  template schema does not accept (case-insensitively) is **skipped with a reason**, never
  mapped to a different value: a template must mean exactly what the image recommends.
  The objects carry only fields the controller owns: no status, no finalizers.
* :func:`template_profile` never invents values: each key is present only when the template
  or a matching recommended deployment supplies it.
* Pruning is the reconciler's decision: :func:`templates_to_prune` only computes the difference.
  While discovery is disabled, templates are never pruned (SPEC §4).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from aimctrl.api.v1alpha1.common import API_VERSION
from aimctrl.api.v1alpha1.enums import (
    AIMStatus,
    ConditionStatus,
    ConditionType,
    Metric,
    Precision,
    Reason,
)
from aimctrl.api.v1alpha1.model import AIMClusterModel, AIMModel, RecommendedDeployment
from aimctrl.api.v1alpha1.template import (
    AIMClusterServiceTemplate,
    AIMServiceTemplate,
    AIMServiceTemplateSpec,
    GPUSelector,
    ProfileMetadata,
)

__all__ = [
    "LABEL_AUTO_GENERATED",
    "LABEL_MODEL",
    "MAX_NAME_LENGTH",
    "AnyModel",
    "AnyTemplate",
    "ModelAggregate",
    "SkippedDeployment",
    "TemplatePlan",
    "aggregate_model_status",
    "desired_templates",
    "gpu_message",
    "is_auto_template_of",
    "model_label_value",
    "plan_templates",
    "template_name",
    "template_profile",
    "template_state",
    "templates_auto_generated_condition",
    "templates_to_prune",
]

LABEL_AUTO_GENERATED = "aim.silogen.ai/auto-generated"
LABEL_MODEL = "aim.silogen.ai/model"
MAX_NAME_LENGTH = 63
# The deployment part of a name is capped so that at least a few characters of the model name
# always survive, even for an absurdly long GPU model string.
_MAX_DEPLOYMENT_PART = 40
_MAX_NAMES_IN_MESSAGE = 5

_METRIC_SHORT = {"latency": "lat", "throughput": "thr"}
_INVALID = re.compile(r"[^a-z0-9-]+")
_DASHES = re.compile(r"-{2,}")

AnyModel = AIMModel | AIMClusterModel
AnyTemplate = AIMServiceTemplate | AIMClusterServiceTemplate
_E = TypeVar("_E", bound=StrEnum)


def _text(value: str | None) -> str | None:
    """A label value, with blank meaning unset."""
    if value is None:
        return None
    value = value.strip()
    return value or None


def _count(value: int | None) -> int | None:
    return value if value is not None and value > 0 else None


def _sanitize(text: str) -> str:
    """Lower-case, every run of characters outside ``[a-z0-9-]`` becomes one dash, trimmed."""
    return _DASHES.sub("-", _INVALID.sub("-", text.lower())).strip("-")


def _short_hash(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def template_name(model_name: str, deployment: RecommendedDeployment) -> str:
    """``<model>-<count>x-<gpu>-<lat|thr>-<precision>-<h4>``, parts left out when unset.

    GPU part: ``<count>x-<gpu>`` with both, ``<gpu>`` without a count, ``x<count>`` without a
    GPU model. Metric: ``latency`` → ``lat``, ``throughput`` → ``thr``, other values verbatim.
    ``h4`` = first 4 hex chars of SHA-256 of ``model_name`` + ``-<gpuModel>`` + ``-x<count>`` +
    ``-<metric>`` + ``-<precision>`` (each only when set; values as the image wrote them). The
    model part is truncated so that the whole name fits in 63 characters.
    """
    gpu = _text(deployment.gpu_model)
    count = _count(deployment.gpu_count)
    metric = _text(deployment.metric)
    precision = _text(deployment.precision)

    hash_input = model_name
    hash_input += f"-{gpu}" if gpu else ""
    hash_input += f"-x{count}" if count else ""
    hash_input += f"-{metric}" if metric else ""
    hash_input += f"-{precision}" if precision else ""
    h4 = _short_hash(hash_input, 4)

    parts: list[str] = []
    if gpu and count:
        parts.append(f"{count}x-{gpu}")
    elif gpu:
        parts.append(gpu)
    elif count:
        parts.append(f"x{count}")
    if metric:
        parts.append(_METRIC_SHORT.get(metric.lower(), metric))
    if precision:
        parts.append(precision)
    core = _sanitize("-".join(parts))[:_MAX_DEPLOYMENT_PART].rstrip("-")
    tail = f"{core}-{h4}" if core else h4
    model_part = _sanitize(model_name)[: MAX_NAME_LENGTH - len(tail) - 1].rstrip("-")
    return f"{model_part}-{tail}" if model_part else tail


def model_label_value(model_name: str) -> str:
    """The ``aim.silogen.ai/model`` label value: the name itself when it fits in 63 characters,
    else its first 54 characters, a dash and 8 hex chars of its SHA-256 (still unique)."""
    if len(model_name) <= MAX_NAME_LENGTH:
        return model_name
    return f"{model_name[:54].rstrip('-.')}-{_short_hash(model_name, 8)}"


@dataclass(frozen=True)
class SkippedDeployment:
    """A recommended deployment that produced no template, and why."""

    index: int
    """Position in ``recommendedDeployments`` (0-based)."""
    reason: str


@dataclass(frozen=True)
class TemplatePlan:
    """The templates a model should own, and the deployments that produced none."""

    templates: tuple[dict[str, Any], ...]
    skipped: tuple[SkippedDeployment, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t["metadata"]["name"] for t in self.templates)


def _enum_value(enum: type[_E], raw: str | None) -> tuple[_E | None, bool]:
    """(member, ok): unset → (None, True); a case-insensitive match → (member, True)."""
    if raw is None:
        return None, True
    member = _members(enum).get(raw.lower())
    return member, member is not None


@functools.cache
def _members(enum: type[_E]) -> dict[str, _E]:
    """``value → member`` of an enum (iterating an Enum class is slow on a hot path)."""
    return {m.value: m for m in enum}


def _describe(deployment: RecommendedDeployment) -> str:
    fields = {
        "gpuModel": deployment.gpu_model,
        "gpuCount": deployment.gpu_count,
        "metric": deployment.metric,
        "precision": deployment.precision,
    }
    return ", ".join(f"{k}={v}" for k, v in fields.items() if v not in (None, ""))


def _template_spec(model: AnyModel, deployment: RecommendedDeployment) -> AIMServiceTemplateSpec:
    """The spec, or ValueError naming the value the schema would reject."""
    metric, metric_ok = _enum_value(Metric, _text(deployment.metric))
    if not metric_ok:
        allowed = ", ".join(m.value for m in Metric)
        raise ValueError(f"metric {deployment.metric!r} is not one of {allowed}")
    precision, precision_ok = _enum_value(Precision, _text(deployment.precision))
    if not precision_ok:
        allowed = ", ".join(p.value for p in Precision)
        raise ValueError(f"precision {deployment.precision!r} is not one of {allowed}")
    gpu = _text(deployment.gpu_model)
    count = _count(deployment.gpu_count)
    return AIMServiceTemplateSpec(
        model_name=model.metadata.name,
        metric=metric,
        precision=precision,
        gpu_selector=GPUSelector(model=gpu, count=count) if gpu or count else None,
        profile_id=_text(deployment.profile_id),
        runtime_config_name=model.spec.runtime_config_name,
        image_pull_secrets=model.spec.image_pull_secrets,
        service_account_name=model.spec.service_account_name,
    )


def _owner_reference(model: AnyModel) -> dict[str, Any]:
    if not model.metadata.uid:
        raise ValueError(f"{model.kind} {model.metadata.name} has no uid; cannot own templates")
    return {
        "apiVersion": model.api_version,
        "kind": model.kind,
        "name": model.metadata.name,
        "uid": model.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def plan_templates(model: AnyModel, *, cluster_scoped: bool | None = None) -> TemplatePlan:
    """One template object per recommended deployment of ``model``, same scope as the model.

    ``cluster_scoped`` defaults to the model's own scope; passing a contradicting value is a
    ValueError. Raises ValueError when the model has no uid (it must come from the server).
    """
    if cluster_scoped is None:
        cluster_scoped = isinstance(model, AIMClusterModel)
    elif cluster_scoped != isinstance(model, AIMClusterModel):
        raise ValueError(f"{model.kind} templates cannot have cluster_scoped={cluster_scoped}")
    meta = model.status.image_metadata
    deployments = (meta.model.recommended_deployments if meta and meta.model else None) or []
    kind = AIMClusterServiceTemplate if cluster_scoped else AIMServiceTemplate
    owner = _owner_reference(model)
    labels = {LABEL_AUTO_GENERATED: "true", LABEL_MODEL: model_label_value(model.metadata.name)}

    by_name: dict[str, dict[str, Any]] = {}
    skipped: list[SkippedDeployment] = []
    for index, deployment in enumerate(deployments):
        try:
            spec = _template_spec(model, deployment)
        except ValueError as e:
            skipped.append(SkippedDeployment(index, f"{_describe(deployment)}: {e}"))
            continue
        name = template_name(model.metadata.name, deployment)
        if name in by_name:
            reason = f"{_describe(deployment)}: same template as an earlier deployment ({name})"
            skipped.append(SkippedDeployment(index, reason))
            continue
        metadata: dict[str, Any] = {"name": name, "labels": dict(labels)}
        if not cluster_scoped:
            metadata["namespace"] = model.metadata.namespace
        metadata["ownerReferences"] = [dict(owner)]
        by_name[name] = {
            "apiVersion": API_VERSION,
            "kind": kind.RESOURCE.kind,
            "metadata": metadata,
            "spec": spec.to_dict(),
        }
    templates = tuple(by_name[n] for n in sorted(by_name))
    return TemplatePlan(templates=templates, skipped=tuple(skipped))


def desired_templates(
    model: AnyModel, *, cluster_scoped: bool | None = None
) -> list[dict[str, Any]]:
    """The template objects of :func:`plan_templates`, sorted by name."""
    return list(plan_templates(model, cluster_scoped=cluster_scoped).templates)


def templates_to_prune(
    existing_auto_template_names: Iterable[str], desired_names: Iterable[str]
) -> list[str]:
    """Auto-generated templates that are no longer recommended, sorted."""
    return sorted(set(existing_auto_template_names) - set(desired_names))


def is_auto_template_of(template: AnyTemplate, model: AnyModel) -> bool:
    """``template`` was generated for ``model``: auto-generated label and controller owner uid.

    The owner uid, not the label, is decisive: a model deleted and recreated under the same name
    does not adopt the old model's templates (the garbage collector removes those).
    """
    if template.metadata.labels.get(LABEL_AUTO_GENERATED) != "true":
        return False
    return any(
        ref.controller and ref.uid == model.metadata.uid and ref.kind == model.kind
        for ref in template.metadata.owner_references
    )


def _same(a: str | None, b: str | None) -> bool:
    return (a or "").strip().lower() == (b or "").strip().lower()


def _matching_deployment(
    template: AnyTemplate, model: AnyModel | None
) -> RecommendedDeployment | None:
    """The recommended deployment a template stands for.

    A deployment with the template's ``profileId`` wins. Otherwise every field the template sets
    (metric, precision, GPU model, GPU count) must match; fields it leaves unset match anything,
    preferring a deployment that leaves them unset too; remaining ties go to the first in the
    image's order.
    """
    meta = model.status.image_metadata if model else None
    deployments = (meta.model.recommended_deployments if meta and meta.model else None) or []
    spec = template.spec
    if spec.profile_id:
        for d in deployments:
            if d.profile_id and d.profile_id == spec.profile_id:
                return d
    selector = spec.gpu_selector or GPUSelector()
    wanted: dict[str, str | None] = {
        "metric": spec.metric.value if spec.metric else None,
        "precision": spec.precision.value if spec.precision else None,
        "gpu": selector.model,
        "count": str(selector.count) if selector.count else None,
    }
    best: tuple[int, RecommendedDeployment] | None = None
    for d in deployments:
        have: dict[str, str | None] = {
            "metric": _text(d.metric),
            "precision": _text(d.precision),
            "gpu": _text(d.gpu_model),
            "count": str(d.gpu_count) if _count(d.gpu_count) else None,
        }
        if any(w is not None and not _same(w, have[k]) for k, w in wanted.items()):
            continue
        extra = sum(1 for k, w in wanted.items() if w is None and have[k] is not None)
        if best is None or extra < best[0]:
            best = (extra, d)
    return best[1] if best else None


def template_profile(template: AnyTemplate, model: AnyModel | None) -> dict[str, Any]:
    """``status.profile.metadata``: {gpu, gpu_count, metric, precision}, each key only when known.

    The template's own spec wins; the model's matching recommended deployment fills the gaps
    (see :func:`_matching_deployment`). ``engine`` and ``type`` are not known to aimctrl (no
    profile is run) and are left out.
    """
    spec = template.spec
    selector = spec.gpu_selector or GPUSelector()
    deployment = _matching_deployment(template, model) or RecommendedDeployment()
    profile = ProfileMetadata(
        gpu=selector.model or _text(deployment.gpu_model),
        gpu_count=selector.count or _count(deployment.gpu_count),
        metric=spec.metric.value if spec.metric else _text(deployment.metric),
        precision=spec.precision.value if spec.precision else _text(deployment.precision),
    )
    return profile.to_dict()


def _name_list(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_MAX_NAMES_IN_MESSAGE])
    more = len(names) - _MAX_NAMES_IN_MESSAGE
    return f"{shown} and {more} more" if more > 0 else shown


def templates_auto_generated_condition(
    model: AnyModel,
    desired: Sequence[Mapping[str, Any]],
    *,
    discovery_enabled: bool,
    ever_generated: bool,
    skipped: Sequence[SkippedDeployment] = (),
) -> tuple[ConditionStatus, Reason, str]:
    """(status, reason, message) of the model's ``TemplatesAutoGenerated`` condition.

    Evaluated in order: autoCreateTemplates false → False/AutoCreationDisabled; discovery
    disabled → True when templates were generated before (they stay in place), else
    False/DiscoveryDisabled; no metadata yet → False/AwaitingMetadata; no usable recommended
    deployment → False/NoRecommendedTemplates; else True/TemplatesAutoGenerated.
    ``ever_generated``: the model owns auto-generated templates, or the condition was True.
    """
    if not model.spec.discovery.auto_create_templates:
        return (
            ConditionStatus.FALSE,
            Reason.AUTO_CREATION_DISABLED,
            "spec.discovery.autoCreateTemplates is false",
        )
    if not discovery_enabled:
        if ever_generated:
            return (
                ConditionStatus.TRUE,
                Reason.TEMPLATES_AUTO_GENERATED,
                "discovery is disabled; templates generated earlier are left in place",
            )
        return (
            ConditionStatus.FALSE,
            Reason.DISCOVERY_DISABLED,
            "discovery is disabled and no templates were ever generated",
        )
    meta = model.status.image_metadata
    if meta is None or meta.model is None:
        return ConditionStatus.FALSE, Reason.AWAITING_METADATA, "waiting for image metadata"
    if not desired:
        count = len(meta.model.recommended_deployments or [])
        message = "the image recommends no deployments"
        if count:
            reasons = "; ".join(s.reason for s in skipped[:_MAX_NAMES_IN_MESSAGE])
            message = f"none of the {count} recommended deployments is usable: {reasons}"
        return ConditionStatus.FALSE, Reason.NO_RECOMMENDED_TEMPLATES, message
    names = [d["metadata"]["name"] for d in desired]
    message = f"{len(names)} template(s): {_name_list(names)}"
    if skipped:
        message += f"; {len(skipped)} deployment(s) skipped: " + "; ".join(
            s.reason for s in skipped[:_MAX_NAMES_IN_MESSAGE]
        )
    return ConditionStatus.TRUE, Reason.TEMPLATES_AUTO_GENERATED, message


def template_state(template: AnyTemplate) -> str:
    """``Ready``, or e.g. ``Degraded (ModelNotFound)``: the status and its Ready reason."""
    status = template.status.status
    if status == AIMStatus.READY:
        return status.value
    ready = next((c for c in template.status.conditions if c.type == ConditionType.READY), None)
    return f"{status.value} ({ready.reason})" if ready and ready.reason else status.value


@dataclass(frozen=True)
class ModelAggregate:
    """A model's summary from its auto-generated templates."""

    status: AIMStatus
    reason: Reason
    message: str


def _stale(template: AnyTemplate) -> bool:
    observed = template.status.observed_generation
    generation = template.metadata.generation
    return generation is not None and (observed is None or observed < generation)


def aggregate_model_status(
    templates: Iterable[AnyTemplate], *, desired_names: Collection[str] = ()
) -> ModelAggregate:
    """The model's summary from its auto templates (SPEC §4, §8), first matching rule wins:
    Degraded when any is Degraded or Failed; Progressing while some are missing (being
    created), Pending, Progressing or have a status older than their spec; NotAvailable
    (``NoRunnableTemplate``) when every one is NotAvailable (its GPUs are on no schedulable
    node); else Ready — every one Ready or NotAvailable, at least one Ready — with a message
    saying how many can run on this cluster. Messages name the templates concerned.

    ``templates``: the model's auto-generated templates (see :func:`is_auto_template_of`);
    ``desired_names``: the names that should exist (a missing one counts as being created).
    """
    by_name = {t.metadata.name: t for t in templates}
    total = sorted(set(by_name) | set(desired_names))
    problems: list[str] = []
    waiting: list[str] = []
    unavailable: list[str] = []
    fleet = ""
    for name in total:
        template = by_name.get(name)
        if template is None:
            waiting.append(f"{name} (not created yet)")
        elif template.status.status in (AIMStatus.DEGRADED, AIMStatus.FAILED):
            problems.append(f"{name}: {template_state(template)}")
        elif _stale(template) or template.status.status not in (
            AIMStatus.READY,
            AIMStatus.NOT_AVAILABLE,
        ):
            waiting.append(f"{name}: {template_state(template)}")
        elif template.status.status == AIMStatus.NOT_AVAILABLE:
            needs, _, fleet = gpu_message(template).partition("; ")
            unavailable.append(f"{name} ({needs})")
    if problems:
        return ModelAggregate(
            AIMStatus.DEGRADED,
            Reason.TEMPLATES_DEGRADED,
            f"{len(problems)} of {len(total)} template(s) have issues: {_name_list(problems)}",
        )
    if waiting:
        return ModelAggregate(
            AIMStatus.PROGRESSING,
            Reason.TEMPLATES_PROGRESSING,
            f"{len(waiting)} of {len(total)} template(s) not ready yet: {_name_list(waiting)}",
        )
    if not total:
        return ModelAggregate(
            AIMStatus.READY, Reason.ALL_TEMPLATES_READY, "no auto-generated templates"
        )
    if len(unavailable) == len(total):
        return ModelAggregate(
            AIMStatus.NOT_AVAILABLE,
            Reason.NO_RUNNABLE_TEMPLATE,
            f"none of the {len(total)} template(s) can run on this cluster: "
            f"{_name_list(unavailable)}{'; ' + fleet if fleet else ''}",
        )
    runnable = len(total) - len(unavailable)
    if not unavailable:
        message = f"all {len(total)} template(s) are Ready and can run on this cluster"
    else:
        message = (
            f"{runnable} of {len(total)} template(s) can run on this cluster; "
            f"NotAvailable: {_name_list(unavailable)}"
            f"{'; ' + fleet if fleet else ''}"
        )
    return ModelAggregate(AIMStatus.READY, Reason.ALL_TEMPLATES_READY, message)


def gpu_message(template: AnyTemplate) -> str:
    """The ``GPUAvailable`` message of a NotAvailable template (what it needs and what exists);
    its state when it has none."""
    for c in template.status.conditions:
        if c.type == ConditionType.GPU_AVAILABLE and c.message:
            return c.message
    return template_state(template)
