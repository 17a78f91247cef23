"""Leader election over a shared lock record, with client-go's semantics.

Candidates compete for one :class:`LeaderRecord` stored behind a :class:`LeaseLock` (in a cluster:
a ``coordination.k8s.io`` Lease, see :mod:`aimctrl.kube.lease`). Every write carries the version
that was read, so two candidates can never both win the same round.

Guarantees:

* A record held by another candidate is taken over only after its ``lease_duration_seconds`` have
  passed on *this* process's monotonic clock, counted from the last time this process saw the
  record change. Remote clocks and the timestamps in the record are never trusted.
* A leader that has not renewed successfully for ``renew_deadline`` (shorter than the lease
  duration) stops leading, so it stops before any other candidate can take over. It also stops at
  once when it reads a record naming another live holder.
* ``on_started_leading(stop)`` runs in its own thread; ``stop`` is set when leadership ends.
  ``on_stopped_leading()`` is called exactly once after a started leadership ends, whether it was
  lost or released; it is not called if this candidate never led.
* On a clean stop the leader sets the leading ``stop`` event, keeps renewing until the
  ``on_started_leading`` callback has returned, then releases the record (empty holder, 1 s lease)
  so that another candidate takes over at its next retry instead of waiting for expiry.

Defaults are controller-runtime's: 15 s lease, 10 s renew deadline, 2 s retry period; the acquire
loop waits ``retry_period * (1 + U[0, 1) * jitter_factor)`` between attempts (jitter 1.2).
"""

from __future__ import annotations

import random
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

import structlog

from aimctrl.errors import AimctrlError
from aimctrl.machinery.clock import REAL_CLOCK, Clock

__all__ = [
    "ConflictError",
    "LeaderElector",
    "LeaderRecord",
    "LeaseLock",
    "LockError",
    "check_timings",
    "default_identity",
]

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class LeaderRecord:
    """Who holds the lock, for how long, and how many times it changed hands.

    ``holder_identity`` is ``""`` when nobody holds it (never acquired, or released).
    """

    holder_identity: str
    lease_duration_seconds: int
    acquire_time: datetime | None
    renew_time: datetime | None
    leader_transitions: int


class LockError(AimctrlError):
    """A lock operation failed (network, server error, permission)."""


class ConflictError(LockError):
    """A create found the record already there, or an update carried a stale version."""


class LeaseLock(Protocol):
    """Storage for one :class:`LeaderRecord` with optimistic concurrency.

    Implementations raise :class:`ConflictError` when the version does not match (or the record
    already exists on create) and :class:`LockError` for any other failure. Each call must be
    bounded in time (a request timeout well under the renew deadline).
    """

    def get(self) -> tuple[LeaderRecord, str] | None:
        """Return the record and its opaque version, or ``None`` if there is no record yet."""
        ...

    def create(self, record: LeaderRecord) -> str:
        """Create the record; return its new version."""
        ...

    def update(self, record: LeaderRecord, version: str) -> str:
        """Replace the record if it is still at ``version``; return its new version."""
        ...

    def describe(self) -> str:
        """A short name for logs, such as ``namespace/name``."""
        ...


def default_identity() -> str:
    """controller-runtime's identity: the host name plus a random UUID, unique per process."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def check_timings(
    lease_duration: float, renew_deadline: float, retry_period: float, jitter_factor: float = 1.2
) -> None:
    """Raise ValueError unless the timings are consistent (client-go's checks)."""
    if lease_duration < 1:
        raise ValueError("lease duration must be at least 1 s (it is stored in whole seconds)")
    if retry_period <= 0 or jitter_factor < 0:
        raise ValueError("retry period must be positive and jitter factor non-negative")
    if lease_duration <= renew_deadline:
        raise ValueError("lease duration must be greater than the renew deadline")
    if renew_deadline <= jitter_factor * retry_period:
        raise ValueError(f"renew deadline must be greater than {jitter_factor} x the retry period")


class LeaderElector:
    """Runs one candidate: acquire, lead while renewing, then lose or release.

    Call :meth:`run` in a thread of its own; it returns when leadership ends or ``stop`` is set
    before leadership was acquired.
    """

    def __init__(
        self,
        lock: LeaseLock,
        identity: str,
        *,
        on_started_leading: Callable[[threading.Event], None],
        on_stopped_leading: Callable[[], None],
        on_new_leader: Callable[[str], None] | None = None,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        jitter_factor: float = 1.2,
        clock: Clock = REAL_CLOCK,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not identity:
            raise ValueError("leader election identity must not be empty")
        check_timings(lease_duration, renew_deadline, retry_period, jitter_factor)
        self._lock = lock
        self._identity = identity
        self._on_started_leading = on_started_leading
        self._on_stopped_leading = on_stopped_leading
        self._on_new_leader = on_new_leader
        self._lease_duration = lease_duration
        self._renew_deadline = renew_deadline
        self._retry_period = retry_period
        self._jitter_factor = jitter_factor
        self._clock = clock
        self._rand = rand
        self._log = _log.bind(lock=lock.describe(), identity=identity)

        self._mu = threading.Lock()
        self._observed: LeaderRecord | None = None
        self._observed_version = ""
        self._observed_time = 0.0
        self._reported_leader = ""
        self._leading = False
        self._last_renew = 0.0

    @property
    def identity(self) -> str:
        return self._identity

    def is_leader(self) -> bool:
        """True between acquiring and losing or releasing the lock."""
        with self._mu:
            return self._leading

    def leader(self) -> str:
        """The holder named by the last record this candidate saw (``""`` if none)."""
        with self._mu:
            return self._observed.holder_identity if self._observed else ""

    def healthy(self, tolerance: float = 20.0) -> bool:
        """False when this candidate leads but has not renewed for lease duration + tolerance.

        Meant for ``/healthz``: it catches an election thread that is stuck in a call.
        """
        with self._mu:
            if not self._leading:
                return True
            stale_for = self._clock.now() - self._last_renew
        return stale_for <= self._lease_duration + tolerance

    def run(self, stop: threading.Event) -> None:
        """Acquire, lead, and return when leadership ends or ``stop`` is set."""
        self._log.info("leader election: acquiring lease")
        if not self._acquire(stop):
            return
        leading_stop = threading.Event()
        leading_done = threading.Event()
        with self._mu:
            self._leading = True
        self._log.info("leader election: acquired lease")
        threading.Thread(
            target=self._lead,
            args=(leading_stop, leading_done),
            name=f"leader-{self._lock.describe()}",
            daemon=True,
        ).start()
        lost = self._renew(stop, leading_stop, leading_done)
        leading_stop.set()
        with self._mu:
            self._leading = False
        if lost:
            self._log.error("leader election: lost lease")
        else:
            self._release()
        self._on_stopped_leading()

    def _lead(self, leading_stop: threading.Event, leading_done: threading.Event) -> None:
        try:
            self._on_started_leading(leading_stop)
        except Exception as e:  # noqa: BLE001 - the callback's failure must not stop renewals
            self._log.error("leader election: leading callback failed", error=repr(e))
        finally:
            leading_done.set()

    def _acquire(self, stop: threading.Event) -> bool:
        while not stop.is_set():
            if self._try_acquire_or_renew():
                return True
            wait = self._retry_period * (1.0 + self._rand() * self._jitter_factor)
            if self._clock.sleep(wait, stop):
                return False
        return False

    def _renew(
        self, stop: threading.Event, leading_stop: threading.Event, leading_done: threading.Event
    ) -> bool:
        """Renew every retry period; return True if leadership was lost, False on a clean stop."""
        while True:
            if stop.is_set():
                leading_stop.set()
                if leading_done.is_set():
                    return False
            wake = leading_done if stop.is_set() else stop
            if self._clock.sleep(self._retry_period, wake):
                continue
            if self._try_acquire_or_renew():
                continue
            with self._mu:
                holder = self._observed.holder_identity if self._observed else ""
                since_renew = self._clock.now() - self._last_renew
            if holder not in ("", self._identity):
                self._log.error("leader election: lease taken by another holder", holder=holder)
                return True
            if since_renew >= self._renew_deadline:
                self._log.error(
                    "leader election: renew deadline passed",
                    seconds_since_renew=since_renew,
                    renew_deadline=self._renew_deadline,
                )
                return True

    def _try_acquire_or_renew(self) -> bool:
        """One round of client-go's tryAcquireOrRenew; True if this candidate now holds the lock."""
        started = self._clock.now()
        wall = datetime.fromtimestamp(self._clock.wall(), UTC)
        duration = int(self._lease_duration)
        try:
            current = self._lock.get()
        except Exception as e:  # noqa: BLE001 - any failed read is a failed attempt, retried
            self._log.warning("leader election: cannot read lease", error=repr(e))
            return False
        if current is None:
            record = LeaderRecord(self._identity, duration, wall, wall, 0)
            return self._write(record, None, started)

        old, version = current
        self._observe(old, version, started)
        with self._mu:
            expires_at = self._observed_time + old.lease_duration_seconds
        if old.holder_identity not in ("", self._identity) and started < expires_at:
            return False
        if old.holder_identity == self._identity:
            record = replace(old, lease_duration_seconds=duration, renew_time=wall)
        else:
            record = LeaderRecord(self._identity, duration, wall, wall, old.leader_transitions + 1)
        return self._write(record, version, started)

    def _write(self, record: LeaderRecord, version: str | None, started: float) -> bool:
        try:
            if version is None:
                new_version = self._lock.create(record)
            else:
                new_version = self._lock.update(record, version)
        except ConflictError:
            self._log.info("leader election: lease changed concurrently")
            return False
        except Exception as e:  # noqa: BLE001 - any failed write is a failed attempt, retried
            self._log.warning("leader election: cannot write lease", error=repr(e))
            return False
        self._observe(record, new_version, started)
        with self._mu:
            self._last_renew = started
        return True

    def _observe(self, record: LeaderRecord, version: str, now: float) -> None:
        """Remember ``record``; restart its expiry countdown only if it changed."""
        with self._mu:
            if record != self._observed:
                self._observed = record
                self._observed_time = now
            self._observed_version = version
            holder = record.holder_identity
            report = bool(holder) and holder != self._reported_leader
            if report:
                self._reported_leader = holder
        if report:
            self._log.info("leader election: new leader observed", holder=holder)
            if self._on_new_leader is not None:
                try:
                    self._on_new_leader(holder)
                except Exception as e:  # noqa: BLE001 - a notification must not stop the election
                    self._log.error("leader election: new leader callback failed", error=repr(e))

    def _release(self) -> None:
        """Hand the lock over: empty holder and a 1 s lease, so others need not wait for expiry."""
        with self._mu:
            observed, version = self._observed, self._observed_version
        if observed is None or observed.holder_identity != self._identity:
            return
        now = datetime.fromtimestamp(self._clock.wall(), UTC)
        record = LeaderRecord("", 1, now, now, observed.leader_transitions)
        try:
            new_version = self._lock.update(record, version)
        except Exception as e:  # noqa: BLE001 - release is best effort; expiry still frees the lock
            self._log.warning("leader election: cannot release lease", error=repr(e))
            return
        self._observe(record, new_version, self._clock.now())
        self._log.info("leader election: released lease")
