"""WriteMemo: skip re-applying a status the cache has not caught up with yet, nothing more."""

from __future__ import annotations

from aimctrl.controllers.status import WriteMemo

COND = {"type": "Ready", "status": "True", "reason": "Ready", "lastTransitionTime": "t1"}


def test_same_body_on_the_same_cached_version_is_already_written() -> None:
    memo = WriteMemo()
    memo.record("ns/a", "5", {"status": "Ready", "conditions": [COND]})
    later = {**COND, "lastTransitionTime": "t2"}  # recomputed a second later from the same cache
    assert memo.already_written("ns/a", "5", {"status": "Ready", "conditions": [later]})
    assert not memo.already_written("ns/a", "5", {"status": "Degraded", "conditions": [COND]})
    assert not memo.already_written("ns/b", "5", {"status": "Ready", "conditions": [COND]})


def test_a_newer_cached_version_drops_the_entry() -> None:
    memo = WriteMemo()
    memo.record("ns/a", "5", {"status": "Ready"})
    assert not memo.already_written("ns/a", "6", {"status": "Ready"})
    assert len(memo) == 0
    assert not memo.already_written("ns/a", "5", {"status": "Ready"})


def test_the_memo_is_bounded() -> None:
    memo = WriteMemo(max_entries=3)
    for i in range(5):
        memo.record(f"ns/{i}", "1", {"i": i})
    assert len(memo) == 3
    assert not memo.already_written("ns/0", "1", {"i": 0})
    assert memo.already_written("ns/4", "1", {"i": 4})
