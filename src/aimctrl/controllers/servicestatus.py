"""The status of one AIMService as a reconcile computes it; pure.

Guarantees:

* :class:`Outcome` records the steps in order (runtime config, model, template, workload); the
  first step that cannot go on *blocks* it with a summary status and a (reason, message);
* :meth:`Outcome.finish` fills every step never reached with the first blocker's reason and
  message (later steps report the same blocker instead of guessing) and sets ``Ready``: True
  with ``status`` Ready only when nothing blocked;
* :func:`service_status` applies the conditions to the cached ones with ``SetStatusCondition``
  semantics (``lastTransitionTime`` moves only when a status flips).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aimctrl.api.conditions import find
from aimctrl.api.v1alpha1.common import ResolvedReference
from aimctrl.api.v1alpha1.enums import AIMStatus, ConditionStatus, ConditionType, Reason
from aimctrl.api.v1alpha1.service import AIMService, AIMServiceStatus
from aimctrl.controllers.status import set_condition
from aimctrl.resolve.templates import AnyModel, AnyTemplate

__all__ = ["READY_MESSAGE", "Outcome", "describe", "service_status", "why"]

READY_MESSAGE = "the model server is available"

_STEPS = (
    ConditionType.RUNTIME_RESOLVED,
    ConditionType.MODEL_RESOLVED,
    ConditionType.TEMPLATE_RESOLVED,
    ConditionType.WORKLOAD_READY,
)


@dataclass
class Outcome:
    """The status being computed; ``blocked`` once a step cannot go on."""

    conditions: dict[str, tuple[ConditionStatus, str, str]] = field(default_factory=dict)
    status: AIMStatus = AIMStatus.PENDING
    blocked: tuple[str, str] | None = None  # (reason, message) of the first blocker
    resolved_model: ResolvedReference | None = None
    resolved_template: ResolvedReference | None = None
    resolved_runtime_config: ResolvedReference | None = None
    resolved_resources: dict[str, Any] | None = None
    template_candidates: list[dict[str, Any]] | None = None

    def ok(self, type_: ConditionType, reason: str, message: str) -> None:
        self.conditions[type_] = (ConditionStatus.TRUE, reason, message)

    def block(self, type_: ConditionType, status: AIMStatus, reason: str, message: str) -> None:
        self.conditions[type_] = (ConditionStatus.FALSE, reason, message)
        self.status = status
        self.blocked = (reason, message)

    def finish(self) -> None:
        """Fill the conditions of the steps never reached, and Ready."""
        if self.blocked is None:
            self.status = AIMStatus.READY
            self.ok(ConditionType.READY, Reason.READY, READY_MESSAGE)
            return
        reason, message = self.blocked
        for step in _STEPS:
            self.conditions.setdefault(step, (ConditionStatus.FALSE, reason, message))
        self.conditions[ConditionType.READY] = (ConditionStatus.FALSE, reason, message)


def service_status(service: AIMService, out: Outcome, now: datetime) -> AIMServiceStatus:
    """The service's new status: the cached conditions updated with ``out``'s."""
    generation = service.metadata.generation
    conditions = [c.model_copy(deep=True) for c in service.status.conditions]
    for type_, (status, reason, message) in out.conditions.items():
        set_condition(
            conditions,
            type_,
            status,
            reason=reason,
            message=message,
            generation=generation,
            now=now,
        )
    return AIMServiceStatus(
        observed_generation=generation,
        status=out.status,
        conditions=conditions,
        resolved_model=out.resolved_model,
        resolved_template=out.resolved_template,
        resolved_runtime_config=out.resolved_runtime_config,
        resolved_resources=out.resolved_resources,
        template_candidates=out.template_candidates,
    )


def describe(obj: AnyModel | AnyTemplate) -> str:
    """``"<Kind> <namespace>/<name>"`` (cluster-scoped: ``"<Kind> <name>"``)."""
    if obj.metadata.namespace:
        return f"{obj.kind} {obj.metadata.namespace}/{obj.metadata.name}"
    return f"{obj.kind} {obj.metadata.name}"


def why(obj: AnyModel | AnyTemplate) -> str:
    """The object's own explanation of its state (Ready condition), for waiting messages."""
    ready = find(obj.status.conditions, ConditionType.READY)
    if ready is not None and (ready.message or ready.reason):
        return ready.message or ready.reason
    return "no status reported yet"
