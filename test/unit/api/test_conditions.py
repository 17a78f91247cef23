"""set_status_condition follows apimachinery's SetStatusCondition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aimctrl.api.conditions import find, is_true, remove, set_status_condition
from aimctrl.api.v1alpha1 import Condition, ConditionStatus, ConditionType, Reason

T0 = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def _ready(status: ConditionStatus, reason: str = "Ready", message: str = "") -> Condition:
    return Condition(
        type=ConditionType.READY,
        status=status,
        reason=reason,
        message=message,
        observed_generation=1,
    )


def test_new_condition_gets_now_truncated_to_seconds() -> None:
    conditions: list[Condition] = []
    assert set_status_condition(conditions, _ready(ConditionStatus.TRUE), T0)
    assert len(conditions) == 1
    assert conditions[0].last_transition_time == T0.replace(microsecond=0)


def test_new_condition_keeps_an_explicit_transition_time() -> None:
    conditions: list[Condition] = []
    new = _ready(ConditionStatus.TRUE)
    new.last_transition_time = T1
    set_status_condition(conditions, new, T0)
    assert conditions[0].last_transition_time == T1


def test_same_status_with_new_reason_keeps_transition_time() -> None:
    conditions: list[Condition] = []
    set_status_condition(conditions, _ready(ConditionStatus.FALSE, "ModelNotFound"), T0)
    changed = set_status_condition(
        conditions, _ready(ConditionStatus.FALSE, "ModelFailed", "model m failed"), T1
    )
    assert changed
    assert conditions[0].reason == "ModelFailed"
    assert conditions[0].message == "model m failed"
    assert conditions[0].last_transition_time == T0.replace(microsecond=0)


def test_status_flip_moves_transition_time() -> None:
    conditions: list[Condition] = []
    set_status_condition(conditions, _ready(ConditionStatus.FALSE, "ModelNotFound"), T0)
    assert set_status_condition(conditions, _ready(ConditionStatus.TRUE), T1)
    assert conditions[0].status is ConditionStatus.TRUE
    assert conditions[0].last_transition_time == T1.replace(microsecond=0)


def test_identical_condition_reports_no_change() -> None:
    conditions: list[Condition] = []
    set_status_condition(conditions, _ready(ConditionStatus.TRUE), T0)
    before = [c.model_copy(deep=True) for c in conditions]
    assert not set_status_condition(conditions, _ready(ConditionStatus.TRUE), T1)
    assert conditions == before


def test_observed_generation_change_is_a_change() -> None:
    conditions: list[Condition] = []
    set_status_condition(conditions, _ready(ConditionStatus.TRUE), T0)
    newer = _ready(ConditionStatus.TRUE)
    newer.observed_generation = 2
    assert set_status_condition(conditions, newer, T1)
    assert conditions[0].observed_generation == 2
    assert conditions[0].last_transition_time == T0.replace(microsecond=0)


def test_one_condition_per_type_and_others_untouched() -> None:
    conditions: list[Condition] = []
    set_status_condition(conditions, _ready(ConditionStatus.TRUE), T0)
    runtime = Condition(
        type=ConditionType.RUNTIME_RESOLVED,
        status=ConditionStatus.FALSE,
        reason=Reason.DEFAULT_RUNTIME_CONFIG_MISSING,
    )
    set_status_condition(conditions, runtime, T0)
    set_status_condition(conditions, _ready(ConditionStatus.FALSE, "Reconciling"), T1)
    assert [c.type for c in conditions] == ["Ready", "RuntimeResolved"]
    assert find(conditions, ConditionType.RUNTIME_RESOLVED) is not None
    assert not is_true(conditions, ConditionType.READY)


def test_stored_condition_is_a_copy_of_the_callers() -> None:
    conditions: list[Condition] = []
    new = _ready(ConditionStatus.TRUE)
    set_status_condition(conditions, new, T0)
    new.reason = "Mutated"
    assert conditions[0].reason == "Ready"
    assert new.last_transition_time is None


def test_is_true_and_find_on_missing_type() -> None:
    assert find([], "Ready") is None
    assert not is_true([], "Ready")
    conditions: list[Condition] = []
    set_status_condition(conditions, _ready(ConditionStatus.TRUE), T0)
    assert is_true(conditions, "Ready")


def test_remove_reports_whether_it_removed() -> None:
    conditions: list[Condition] = []
    set_status_condition(conditions, _ready(ConditionStatus.TRUE), T0)
    assert remove(conditions, "Ready")
    assert conditions == []
    assert not remove(conditions, "Ready")


def test_naive_now_is_taken_as_utc() -> None:
    conditions: list[Condition] = []
    set_status_condition(conditions, _ready(ConditionStatus.TRUE), datetime(2025, 1, 1, 12, 0, 0))
    assert conditions[0].to_dict()["lastTransitionTime"] == "2025-01-01T12:00:00Z"
