"""Condition list helpers with apimachinery's ``meta.SetStatusCondition`` semantics.

Guarantees of :func:`set_status_condition`:

* at most one condition per ``type`` is kept (the list is a map keyed by ``type``);
* ``lastTransitionTime`` changes only when ``status`` flips (or the condition is new), so it
  records when the state last changed, not when the reconciler last ran;
* ``reason``, ``message`` and ``observedGeneration`` always take the new values;
* the return value says whether anything changed, so a reconciler writes status only then.

The list is changed in place; the conditions it holds are copies, never the caller's ``new``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aimctrl.api.v1alpha1.common import Condition
from aimctrl.api.v1alpha1.enums import ConditionStatus

__all__ = ["find", "is_true", "remove", "set_status_condition"]


def _seconds(now: datetime) -> datetime:
    # metav1.Time has second precision; keeping microseconds would make every write look new.
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(UTC).replace(microsecond=0)


def find(conditions: list[Condition], type_: str) -> Condition | None:
    """The condition of ``type_``, or None."""
    for condition in conditions:
        if condition.type == type_:
            return condition
    return None


def is_true(conditions: list[Condition], type_: str) -> bool:
    """Whether the condition of ``type_`` exists and has status True."""
    condition = find(conditions, type_)
    return condition is not None and condition.status == ConditionStatus.TRUE


def remove(conditions: list[Condition], type_: str) -> bool:
    """Remove the condition of ``type_``; returns whether one was removed."""
    kept = [c for c in conditions if c.type != type_]
    removed = len(kept) != len(conditions)
    conditions[:] = kept
    return removed


def set_status_condition(conditions: list[Condition], new: Condition, now: datetime) -> bool:
    """Add or update the condition of ``new.type``; returns whether ``conditions`` changed.

    A new condition gets ``new.last_transition_time``, or ``now`` when that is unset.
    """
    existing = find(conditions, new.type)
    if existing is None:
        added = new.model_copy(deep=True)
        if added.last_transition_time is None:
            added.last_transition_time = _seconds(now)
        conditions.append(added)
        return True
    changed = False
    if existing.status != new.status:
        existing.status = new.status
        existing.last_transition_time = new.last_transition_time or _seconds(now)
        changed = True
    if existing.reason != new.reason:
        existing.reason = new.reason
        changed = True
    if existing.message != new.message:
        existing.message = new.message
        changed = True
    if existing.observed_generation != new.observed_generation:
        existing.observed_generation = new.observed_generation
        changed = True
    return changed
