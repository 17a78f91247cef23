"""The part of a model's status the discovery reconciler owns, and its summary; pure.

Guarantees:

* :class:`ModelStatus` starts from the cached status restricted to the owned conditions
  (``RuntimeResolved``, ``MetadataExtracted``, ``Ready``) and fields (``observedGeneration``,
  ``status``, ``resolvedRuntimeConfig``, ``imageMetadata``, ``discoveredMetadata``); its
  :meth:`~ModelStatus.to_dict` is the status of the apply body, nothing else;
* :func:`unchanged` compares that body with the cached status on the owned part only, ignoring
  condition order and empty values, so a converged model causes no write;
* :func:`summarise` sets ``status`` and the ``Ready`` condition from the runtime resolution, the
  ``MetadataExtracted`` condition and the auto-generated templates (first matching rule wins):
  a blocking runtime config → Failed; no discovery yet → Pending; discovery disabled → Ready;
  discovery failed → Failed; in flight → Progressing; no templates expected → Ready; else the
  templates' aggregate (:func:`~aimctrl.resolve.templates.aggregate_model_status`), whose
  message, while Progressing, is replaced by a constant one (:func:`progressing_message`) so a
  template's own transitions do not rewrite the model's status;
* :func:`model_view` and :func:`template_view` are the parts of a model and of a template that
  the reconciler reads: updates outside them do not enqueue the model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from aimctrl.api.conditions import find
from aimctrl.api.v1alpha1.common import Condition
from aimctrl.api.v1alpha1.enums import AIMStatus, ConditionStatus, ConditionType, Reason
from aimctrl.controllers.status import set_condition
from aimctrl.machinery.predicate import stable_metadata
from aimctrl.resolve.runtimeconfig import RuntimeResolution
from aimctrl.resolve.templates import AnyModel, AnyTemplate, aggregate_model_status

__all__ = [
    "OWNED_CONDITIONS",
    "AutoTemplates",
    "ModelStatus",
    "model_view",
    "progressing_message",
    "summarise",
    "template_view",
    "unchanged",
]

OWNED_CONDITIONS = (
    ConditionType.RUNTIME_RESOLVED,
    ConditionType.METADATA_EXTRACTED,
    ConditionType.READY,
)
_OWNED_FIELDS = (
    "observedGeneration",
    "status",
    "resolvedRuntimeConfig",
    "imageMetadata",
    "discoveredMetadata",
)

AutoTemplates = Callable[[AnyModel], tuple[Sequence[AnyTemplate], tuple[str, ...]]]
"""``model -> (its auto-generated templates in the cache, the names expected)``."""


def _prune(value: Any) -> Any:
    """Drop ``None`` and empty lists/dicts recursively, so that cached and computed compare."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, [], {})}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


class ModelStatus:
    """The owned part of a model's status, mutated by one reconcile."""

    def __init__(self, model: AnyModel) -> None:
        current = model.status
        self.generation = model.metadata.generation
        self.conditions = [
            c.model_copy(deep=True) for c in current.conditions if c.type in OWNED_CONDITIONS
        ]
        self.status = current.status
        self.resolved_runtime_config = current.resolved_runtime_config
        self.image_metadata = current.image_metadata
        self.discovered_metadata = current.discovered_metadata

    def condition(self, type_: str) -> Condition | None:
        return find(self.conditions, type_)

    def set(
        self, type_: str, status: ConditionStatus, reason: str, message: str, now: datetime
    ) -> bool:
        """Set one condition; return whether its status or reason changed (a transition)."""
        change = set_condition(
            self.conditions,
            type_,
            status,
            reason=reason,
            message=message,
            generation=self.generation,
            now=now,
        )
        return change.transitioned

    def to_dict(self) -> dict[str, Any]:
        order = {t.value: i for i, t in enumerate(OWNED_CONDITIONS)}
        conditions = sorted(self.conditions, key=lambda c: order.get(c.type, 99))
        body: dict[str, Any] = {
            "observedGeneration": self.generation,
            "status": self.status.value,
            "conditions": [c.to_dict() for c in conditions],
        }
        if self.resolved_runtime_config is not None:
            body["resolvedRuntimeConfig"] = self.resolved_runtime_config.to_dict()
        if self.image_metadata is not None:
            body["imageMetadata"] = self.image_metadata.to_dict()
        if self.discovered_metadata is not None:
            body["discoveredMetadata"] = self.discovered_metadata.to_dict()
        return _prune(body)  # type: ignore[no-any-return]


def unchanged(body: Mapping[str, Any], cached: Mapping[str, Any]) -> bool:
    """Whether ``body`` (a :meth:`ModelStatus.to_dict`) equals the owned part of ``cached``."""
    mine = dict(body)
    mine["conditions"] = {c["type"]: c for c in body.get("conditions") or ()}
    theirs = {k: cached[k] for k in _OWNED_FIELDS if k in cached}
    types = {t.value for t in OWNED_CONDITIONS}
    theirs["conditions"] = {
        c.get("type"): c for c in cached.get("conditions") or () if c.get("type") in types
    }
    return bool(_prune(mine) == _prune(theirs))


def model_view(model: Mapping[str, Any]) -> tuple[object, ...]:
    """What the model reconciler reads of its own model: metadata (without the resourceVersion and
    managedFields), spec, and the owned part of the status. Another controller's condition
    (``TemplatesAutoGenerated``) moving does not wake it."""
    status = model.get("status") or {}
    types = {t.value for t in OWNED_CONDITIONS}
    owned = {k: status.get(k) for k in _OWNED_FIELDS}
    conditions = [c for c in status.get("conditions") or () if c.get("type") in types]
    return stable_metadata(model), model.get("spec"), owned, conditions


def template_view(template: Mapping[str, Any]) -> tuple[object, ...]:
    """What a model's summary reads of one of its templates (:func:`is_auto_template_of`,
    :func:`~aimctrl.resolve.templates.aggregate_model_status`): a template update outside it
    does not wake the model."""
    meta = template.get("metadata") or {}
    status = template.get("status") or {}
    conditions = status.get("conditions") or ()
    ready: Mapping[str, Any] = next(
        (c for c in conditions if c.get("type") == ConditionType.READY.value), {}
    )
    # A NotAvailable template's GPU message is quoted in the model's Ready message.
    gpus: Mapping[str, Any] = next(
        (c for c in conditions if c.get("type") == ConditionType.GPU_AVAILABLE.value), {}
    )
    return (
        meta.get("name"),
        meta.get("namespace"),
        meta.get("generation"),
        meta.get("labels"),
        meta.get("ownerReferences"),
        meta.get("deletionTimestamp"),
        status.get("status"),
        status.get("observedGeneration"),
        ready.get("status"),
        ready.get("reason"),
        gpus.get("message") if gpus.get("status") == ConditionStatus.FALSE.value else None,
    )


def summarise(
    status: ModelStatus,
    model: AnyModel,
    runtime: RuntimeResolution,
    *,
    auto_templates: AutoTemplates,
    now: datetime,
) -> None:
    """Set ``status.status`` and the ``Ready`` condition that mirrors it."""
    summary, reason, message = _summary(status, model, runtime, auto_templates)
    status.status = summary
    ready = ConditionStatus.TRUE if summary == AIMStatus.READY else ConditionStatus.FALSE
    status.set(ConditionType.READY, ready, reason, message, now)


def _summary(
    status: ModelStatus,
    model: AnyModel,
    runtime: RuntimeResolution,
    auto_templates: AutoTemplates,
) -> tuple[AIMStatus, str, str]:
    if runtime.blocking:
        return AIMStatus.FAILED, runtime.reason.value, runtime.message
    extracted = status.condition(ConditionType.METADATA_EXTRACTED)
    if extracted is None:
        return AIMStatus.PENDING, Reason.RECONCILING.value, "waiting for discovery"
    if extracted.reason == Reason.DISCOVERY_DISABLED:
        return AIMStatus.READY, Reason.DISCOVERY_DISABLED.value, "discovery is disabled"
    if extracted.status == ConditionStatus.FALSE:
        return AIMStatus.FAILED, extracted.reason, extracted.message
    if extracted.status == ConditionStatus.UNKNOWN:
        return AIMStatus.PROGRESSING, extracted.reason, extracted.message
    if not model.spec.discovery.auto_create_templates:
        return AIMStatus.READY, Reason.READY.value, extracted.message
    # The templates expected follow the metadata being written now, not the cached one.
    view = model.model_copy(
        update={"status": model.status.model_copy(update={"image_metadata": status.image_metadata})}
    )
    templates, names = auto_templates(view)
    if not names:
        return AIMStatus.READY, Reason.READY.value, extracted.message
    aggregate = aggregate_model_status(list(templates), desired_names=names)
    if aggregate.status == AIMStatus.PROGRESSING:
        # Constant while progressing: a message that counted or named the templates still
        # waited for would change (and rewrite this status) on every template transition.
        return aggregate.status, aggregate.reason.value, progressing_message(len(names))
    return aggregate.status, aggregate.reason.value, aggregate.message


def progressing_message(expected: int) -> str:
    """The ``Ready`` message while the auto-generated templates converge (no running counts)."""
    return f"waiting for the {expected} auto-generated template(s) to be created and become Ready"
