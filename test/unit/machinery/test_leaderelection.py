"""LeaderElector against an in-memory lock, driven by a FakeClock (no sleeps).

Every scenario runs the real ``run()`` loop in a thread. ``_Cluster.step`` moves fake time one
second at a time and then waits (briefly, in real time) until every live elector thread is blocked
on the clock again, so each assertion looks at a quiescent state.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from aimctrl.machinery.clock import FakeClock
from aimctrl.machinery.leaderelection import (
    ConflictError,
    LeaderElector,
    LeaderRecord,
    LockError,
)

T0 = 1_000.0


class _Store:
    """The shared 'apiserver' holding one record with a version counter."""

    def __init__(self) -> None:
        self.mu = threading.Lock()
        self.record: LeaderRecord | None = None
        self.version = 0
        self.writes: list[LeaderRecord] = []
        self.conflicts_to_inject = 0

    def put(self, record: LeaderRecord) -> None:
        with self.mu:
            self.record = record
            self.version += 1


class _FakeLock:
    """One candidate's view of the store; ``partitioned`` makes every call fail."""

    def __init__(self, store: _Store) -> None:
        self.store = store
        self.partitioned = False
        self.hang: threading.Event | None = None

    def describe(self) -> str:
        return "test/lease"

    def _check(self) -> None:
        if self.hang is not None:
            self.hang.wait(5.0)
        if self.partitioned:
            raise LockError("connection refused")

    def get(self) -> tuple[LeaderRecord, str] | None:
        self._check()
        with self.store.mu:
            if self.store.record is None:
                return None
            return self.store.record, str(self.store.version)

    def create(self, record: LeaderRecord) -> str:
        self._check()
        with self.store.mu:
            if self.store.record is not None or self._take_conflict():
                raise ConflictError("already exists")
            return self._write(record)

    def update(self, record: LeaderRecord, version: str) -> str:
        self._check()
        with self.store.mu:
            if version != str(self.store.version) or self._take_conflict():
                raise ConflictError("stale version")
            return self._write(record)

    def _take_conflict(self) -> bool:
        if self.store.conflicts_to_inject:
            self.store.conflicts_to_inject -= 1
            return True
        return False

    def _write(self, record: LeaderRecord) -> str:
        self.store.record = record
        self.store.version += 1
        self.store.writes.append(record)
        return str(self.store.version)


@dataclass
class _Candidate:
    elector: LeaderElector
    lock: _FakeLock
    stop: threading.Event
    thread: threading.Thread
    started: list[threading.Event] = field(default_factory=list)
    stopped: int = 0
    new_leaders: list[str] = field(default_factory=list)
    release_gate: threading.Event | None = None


class _Cluster:
    def __init__(self) -> None:
        self.clock = FakeClock(start=T0)
        self.store = _Store()
        self.candidates: list[_Candidate] = []

    def start(self, identity: str, *, release_gate: threading.Event | None = None) -> _Candidate:
        lock = _FakeLock(self.store)
        stop = threading.Event()
        box: dict[str, _Candidate] = {}

        def started(leading_stop: threading.Event) -> None:
            box["c"].started.append(leading_stop)
            leading_stop.wait()
            if box["c"].release_gate is not None:
                box["c"].release_gate.wait()

        def stopped() -> None:
            box["c"].stopped += 1

        elector = LeaderElector(
            lock,
            identity,
            on_started_leading=started,
            on_stopped_leading=stopped,
            on_new_leader=lambda who: box["c"].new_leaders.append(who),
            clock=self.clock,
            rand=lambda: 0.0,
        )
        thread = threading.Thread(target=elector.run, args=(stop,), daemon=True)
        cand = _Candidate(elector, lock, stop, thread, release_gate=release_gate)
        box["c"] = cand
        self.candidates.append(cand)
        thread.start()
        self.settle()
        return cand

    def settle(self) -> None:
        """Wait until every live elector thread is blocked on the fake clock (or has exited)."""
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            alive = sum(c.thread.is_alive() for c in self.candidates)
            # FakeClock.step unregisters the waiters it wakes before returning, so a woken
            # thread counts as busy until it sleeps on the clock again or exits.
            if self.clock.waiter_count() >= alive:
                return
            time.sleep(0.001)
        raise AssertionError("elector threads did not settle")

    def step(self, seconds: float = 1.0) -> None:
        for _ in range(round(seconds)):
            self.clock.step(1.0)
            self.settle()

    def stop(self, cand: _Candidate) -> None:
        """Set the candidate's stop event and wait until its elector has acted on it.

        Without a release gate the elector thread exits (released or never led); with a closed
        gate it keeps renewing, so wait until it has asked the leading callback to stop.
        """
        cand.stop.set()
        if cand.release_gate is None or not cand.started:
            cand.thread.join(5.0)
            assert not cand.thread.is_alive(), "elector did not exit after stop"
        else:
            assert cand.started[-1].wait(5.0), "elector did not stop its leading callback"
        self.settle()

    def leaders(self) -> list[str]:
        return [c.elector.identity for c in self.candidates if c.elector.is_leader()]

    def now(self) -> float:
        return self.clock.now() - T0


def _record(holder: str, *, renew: datetime | None = None) -> LeaderRecord:
    when = renew or datetime(2000, 1, 1, tzinfo=UTC)
    return LeaderRecord(holder, 15, when, when, 3)


@pytest.fixture
def cluster() -> Iterator[_Cluster]:
    c = _Cluster()
    yield c
    for cand in c.candidates:
        cand.stop.set()
        if cand.release_gate is not None:
            cand.release_gate.set()
        for ev in cand.started:
            ev.set()


def test_acquires_a_free_lock_at_once_and_reports_itself_as_leader(cluster: _Cluster) -> None:
    a = cluster.start("a")

    assert a.elector.is_leader()
    assert len(a.started) == 1
    assert a.new_leaders == ["a"]
    assert cluster.store.record is not None
    assert cluster.store.record.holder_identity == "a"
    assert cluster.store.record.lease_duration_seconds == 15
    assert cluster.store.record.leader_transitions == 0


def test_does_not_take_over_before_expiry_on_its_own_clock(cluster: _Cluster) -> None:
    # The remote renew time is decades old: only our own observation time counts.
    cluster.store.put(_record("b"))
    a = cluster.start("a")

    cluster.step(14)
    assert not a.elector.is_leader()
    assert a.new_leaders == ["b"]

    cluster.step(2)  # attempt at t=16 is the first with t >= observed(0) + 15
    assert a.elector.is_leader()
    assert cluster.store.record is not None
    assert cluster.store.record.holder_identity == "a"
    assert cluster.store.record.leader_transitions == 4


def test_a_changed_record_restarts_the_expiry_countdown(cluster: _Cluster) -> None:
    cluster.store.put(_record("b"))
    a = cluster.start("a")

    cluster.step(9)
    cluster.store.put(_record("b", renew=datetime(2000, 1, 1, 0, 0, 9, tzinfo=UTC)))
    cluster.step(15)  # t=24: the change was observed at t=10, so it expires at 25
    assert not a.elector.is_leader()

    cluster.step(2)
    assert a.elector.is_leader()


def test_renewing_keeps_leadership_and_the_acquire_time(cluster: _Cluster) -> None:
    a = cluster.start("a")
    first = cluster.store.record
    assert first is not None

    cluster.step(60)

    assert a.elector.is_leader()
    assert a.stopped == 0
    last = cluster.store.record
    assert last is not None
    assert last.acquire_time == first.acquire_time
    assert last.renew_time is not None
    assert first.renew_time is not None
    assert (last.renew_time - first.renew_time).total_seconds() == 60
    assert len(cluster.store.writes) == 31  # acquire + one renewal every 2 s


def test_stops_leading_when_no_renewal_succeeds_within_the_renew_deadline(
    cluster: _Cluster,
) -> None:
    a = cluster.start("a")
    a.lock.partitioned = True

    cluster.step(9)
    assert a.elector.is_leader()
    assert a.stopped == 0

    cluster.step(1)  # t=10: renew deadline since the last success at t=0
    assert not a.elector.is_leader()
    assert a.stopped == 1
    assert a.started[0].is_set()
    assert not a.thread.is_alive()


def test_renew_failures_shorter_than_the_deadline_are_survived(cluster: _Cluster) -> None:
    a = cluster.start("a")
    a.lock.partitioned = True
    cluster.step(8)
    a.lock.partitioned = False
    cluster.step(30)

    assert a.elector.is_leader()
    assert a.stopped == 0


def test_stops_leading_at_once_when_another_holder_owns_the_record(cluster: _Cluster) -> None:
    a = cluster.start("a")
    cluster.step(3)
    cluster.store.put(_record("intruder"))

    cluster.step(1)  # next renewal at t=4 reads the record

    assert not a.elector.is_leader()
    assert a.stopped == 1


def test_release_on_stop_lets_the_other_candidate_take_over_at_its_next_retry(
    cluster: _Cluster,
) -> None:
    a = cluster.start("a")
    b = cluster.start("b")
    cluster.step(5)
    assert cluster.leaders() == ["a"]

    cluster.stop(a)
    assert a.stopped == 1
    assert not a.thread.is_alive()
    released = cluster.store.record
    assert released is not None
    assert released.holder_identity == ""
    assert released.lease_duration_seconds == 1

    cluster.step(2)  # far less than the 15 s lease
    assert cluster.leaders() == ["b"]
    assert b.new_leaders == ["a", "b"]


def test_clean_stop_keeps_renewing_until_the_leading_callback_returns(
    cluster: _Cluster,
) -> None:
    gate = threading.Event()
    a = cluster.start("a", release_gate=gate)
    cluster.stop(a)
    cluster.step(20)  # far past the lease duration: renewals must continue

    assert a.started[0].is_set()
    assert a.stopped == 0
    record = cluster.store.record
    assert record is not None
    assert record.holder_identity == "a"

    gate.set()
    a.thread.join(5.0)
    assert a.stopped == 1
    assert cluster.store.record is not None
    assert cluster.store.record.holder_identity == ""


def test_a_write_conflict_is_a_failed_attempt_retried_next_period(cluster: _Cluster) -> None:
    cluster.store.conflicts_to_inject = 1
    a = cluster.start("a")
    assert not a.elector.is_leader()

    cluster.step(2)
    assert a.elector.is_leader()


def test_a_conflict_while_leading_does_not_lose_leadership(cluster: _Cluster) -> None:
    a = cluster.start("a")
    cluster.store.conflicts_to_inject = 2
    cluster.step(20)

    assert a.elector.is_leader()
    assert a.stopped == 0


def test_not_leading_when_stopped_before_acquiring(cluster: _Cluster) -> None:
    cluster.store.put(_record("b"))
    a = cluster.start("a")
    cluster.stop(a)

    assert not a.thread.is_alive()
    assert a.started == []
    assert a.stopped == 0


def test_a_partitioned_leader_stops_before_the_standby_takes_over(cluster: _Cluster) -> None:
    a = cluster.start("a")
    cluster.step(1)
    b = cluster.start("b")  # b retries at odd times, a renews at even times
    cluster.step(3)
    a.lock.partitioned = True  # last successful renewal by a: t=4
    timeline: list[tuple[float, list[str]]] = []
    for _ in range(30):
        cluster.step(1)
        timeline.append((cluster.now(), cluster.leaders()))

    assert all(len(leaders) <= 1 for _, leaders in timeline), timeline
    lost_at = next(t for t, leaders in timeline if leaders != ["a"])
    taken_at = next(t for t, leaders in timeline if leaders == ["b"])
    assert lost_at == 14  # renew deadline 10 s after the last success
    assert taken_at == 21  # b saw a's last renewal at t=5; it expires at 20; next retry at 21
    assert a.stopped == 1
    assert b.elector.is_leader()


def test_two_candidates_never_lead_at_the_same_time(cluster: _Cluster) -> None:
    rng = random.Random(7)  # noqa: S311 - a reproducible schedule, not a secret
    generation = {"a": 0, "b": 0}
    current = {name: cluster.start(f"{name}0") for name in ("a", "b")}
    leader_seconds = 0
    handovers = 0
    previous = ""

    for _ in range(400):
        for name, cand in current.items():
            if not cand.thread.is_alive():  # lost or stopped: the process restarts
                generation[name] += 1
                current[name] = cluster.start(f"{name}{generation[name]}")
            elif rng.random() < 0.05:
                cand.lock.partitioned = not cand.lock.partitioned
            elif cand.elector.is_leader() and rng.random() < 0.02:
                cluster.stop(cand)
        cluster.step(1)

        leaders = cluster.leaders()
        assert len(leaders) <= 1, f"two leaders at t={cluster.now()}: {leaders}"
        if leaders:
            leader_seconds += 1
            record = cluster.store.record
            assert record is not None
            assert record.holder_identity == leaders[0]
            if leaders[0] != previous:
                handovers += 1
                previous = leaders[0]

    assert handovers >= 5
    assert leader_seconds >= 200


def test_rejects_timings_that_break_the_safety_margin() -> None:
    lock = _FakeLock(_Store())
    with pytest.raises(ValueError, match="greater than the renew deadline"):
        LeaderElector(
            lock,
            "a",
            on_started_leading=lambda _: None,
            on_stopped_leading=lambda: None,
            lease_duration=10,
        )
    with pytest.raises(ValueError, match=r"1\.2 x the retry period"):
        LeaderElector(
            lock,
            "a",
            on_started_leading=lambda _: None,
            on_stopped_leading=lambda: None,
            renew_deadline=2.0,
        )


def test_healthy_turns_false_when_a_leader_stops_renewing(cluster: _Cluster) -> None:
    a = cluster.start("a")
    assert a.elector.healthy()
    hang = threading.Event()
    a.lock.hang = hang  # the next lock call never returns, as with a dead TCP connection
    cluster.clock.step(2.0)  # wakes the renew loop, which then blocks in get()
    cluster.clock.step(30.0)
    assert a.elector.healthy(tolerance=20)  # 32 s <= 15 s lease + 20 s tolerance
    cluster.clock.step(5.0)
    assert not a.elector.healthy(tolerance=20)
    assert a.elector.is_leader()  # stuck, so it has not noticed; /healthz is the safety net
    a.lock.hang = None
    hang.set()
