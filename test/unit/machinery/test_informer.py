"""SharedInformer: ordered fan-out to handlers, per-handler sync, tombstones, resync, factory."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator

import pytest

from aimctrl.machinery.clock import FakeClock
from aimctrl.machinery.informer import InformerFactory, SharedInformer, wait_for_cache_sync
from aimctrl.machinery.listwatch import GoneError, ListPage
from aimctrl.machinery.reflector import Backoff
from aimctrl.machinery.store import DeletedFinalStateUnknown, Object
from aimctrl.testing.fakes import ScriptedListerWatcher, bookmark, ev, obj

pytestmark = pytest.mark.timeout(20)


class Recorder:
    def __init__(self, fail_on: str | None = None) -> None:
        self.events: list[tuple[str, ...]] = []
        self.cond = threading.Condition()
        self.fail_on = fail_on

    def _record(self, *entry: str) -> None:
        with self.cond:
            self.events.append(entry)
            self.cond.notify_all()
        if self.fail_on is not None and entry[1] == self.fail_on:
            raise RuntimeError("handler bug")

    def on_add(self, obj: Object, is_initial_list: bool) -> None:
        self._record("add", obj["metadata"]["name"], "initial" if is_initial_list else "live")

    def on_update(self, old: Object, new: Object) -> None:
        self._record(
            "update",
            new["metadata"]["name"],
            old["metadata"]["resourceVersion"],
            new["metadata"]["resourceVersion"],
        )

    def on_delete(self, obj: Object | DeletedFinalStateUnknown) -> None:
        if isinstance(obj, DeletedFinalStateUnknown):
            self._record("tombstone", obj.key)
        else:
            self._record("delete", obj["metadata"]["name"])

    def wait_for(self, n: int) -> list[tuple[str, ...]]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.events) >= n, 5), self.events
            return list(self.events)


def wait_true(fn: Callable[[], bool]) -> bool:
    """Poll a condition another thread makes true (real time, bounded)."""
    tick = threading.Event()
    for _ in range(500):
        if fn():
            return True
        tick.wait(0.01)
    return fn()


class Harness:
    def __init__(self, *, resync_period: float = 0.0) -> None:
        self.clock = FakeClock()
        self.lw = ScriptedListerWatcher()
        self.stop = threading.Event()
        self.informer = SharedInformer(
            self.lw,
            name="cm",
            clock=self.clock,
            resync_period=resync_period,
            rand=random.Random(1),  # noqa: S311 - seeded for reproducible timeouts
            backoff=Backoff(clock=self.clock, rand=lambda: 1.0),
        )
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = self.informer.start(self.stop)

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(5)
            assert not self.thread.is_alive()


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.close()


def test_initial_list_is_delivered_as_initial_adds_then_the_handler_syncs(h: Harness) -> None:
    rec = Recorder()
    reg = h.informer.add_event_handler(rec)
    h.lw.lists.append(ListPage([obj("a", "1"), obj("b", "2")], "5"))
    assert not h.informer.has_synced()
    h.start()

    assert wait_true(reg.has_synced)
    assert rec.events == [("add", "a", "initial"), ("add", "b", "initial")]
    assert h.informer.has_synced()


def test_watch_events_reach_handlers_in_cache_order(h: Harness) -> None:
    rec = Recorder()
    h.informer.add_event_handler(rec)
    h.lw.lists.append(ListPage([obj("a", "1")], "5"))
    h.lw.watches.append(
        [
            ev("ADDED", obj("b", "6")),
            ev("MODIFIED", obj("a", "7")),
            bookmark("8"),
            ev("DELETED", obj("b", "9")),
            ev("DELETED", obj("never-seen", "10")),
        ]
    )
    h.start()

    assert h.lw.idle.wait(5)
    events = rec.wait_for(4)
    assert events == [
        ("add", "a", "initial"),
        ("add", "b", "live"),
        ("update", "a", "1", "7"),
        ("delete", "b"),
    ]
    assert h.informer.last_sync_resource_version() == "10"
    assert h.informer.lister().get("b", "ns") is None


def test_relist_after_gone_sends_tombstones_for_objects_deleted_meanwhile(h: Harness) -> None:
    rec = Recorder()
    h.informer.add_event_handler(rec)
    h.lw.lists.append(ListPage([obj("a", "1"), obj("b", "2")], "5"))
    h.lw.watches.append([GoneError()])
    h.lw.lists.append(ListPage([obj("a", "1"), obj("c", "7")], "8"))
    h.start()
    assert h.clock.block_until_waiters(1)
    h.clock.step(0.8)

    events = rec.wait_for(5)
    assert events[2:] == [("add", "c", "live"), ("update", "a", "1", "1"), ("tombstone", "ns/b")]


def test_late_handler_gets_the_cache_replayed_before_it_syncs(h: Harness) -> None:
    h.lw.lists.append(ListPage([obj("a", "1")], "5"))
    h.start()
    assert wait_true(h.informer.has_synced)
    assert h.lw.idle.wait(5)

    late = Recorder()
    reg = h.informer.add_event_handler(late)
    assert wait_true(reg.has_synced)
    assert late.events == [("add", "a", "initial")]


def test_a_failing_handler_does_not_stop_delivery(h: Harness) -> None:
    bad = Recorder(fail_on="a")
    good = Recorder()
    h.informer.add_event_handler(bad)
    h.informer.add_event_handler(good)
    h.lw.lists.append(ListPage([obj("a", "1"), obj("b", "2")], "5"))
    h.start()

    assert [e[1] for e in good.wait_for(2)] == ["a", "b"]
    assert [e[1] for e in bad.wait_for(2)] == ["a", "b"]


def test_removed_handler_receives_nothing_more(h: Harness) -> None:
    rec = Recorder()
    reg = h.informer.add_event_handler(rec)
    h.informer.remove_event_handler(reg)
    keep = Recorder()
    h.informer.add_event_handler(keep)
    h.lw.lists.append(ListPage([obj("a", "1")], "5"))
    h.start()
    keep.wait_for(1)
    assert rec.events == []


def test_resync_replays_the_cache_as_updates_every_period() -> None:
    h = Harness(resync_period=60.0)
    try:
        rec = Recorder()
        h.informer.add_event_handler(rec)
        h.lw.lists.append(ListPage([obj("a", "1")], "5"))
        h.start()
        assert h.lw.idle.wait(5)
        rec.wait_for(1)
        assert h.clock.block_until_waiters(1)  # the resync timer
        h.clock.step(59)
        assert h.clock.waiter_count() == 1
        h.clock.step(1)
        assert rec.wait_for(2)[1] == ("update", "a", "1", "1")
    finally:
        h.close()


def test_informer_cannot_be_started_twice(h: Harness) -> None:
    h.start()
    with pytest.raises(RuntimeError, match="already started"):
        h.informer.start(h.stop)


def test_factory_hands_out_one_informer_per_key_and_adds_new_indexers() -> None:
    factory = InformerFactory()
    made: list[ScriptedListerWatcher] = []

    def new_lw() -> ScriptedListerWatcher:
        made.append(ScriptedListerWatcher())
        return made[-1]

    first = factory.informer_for("configmaps", new_lw, indexers={"a": lambda o: []})
    second = factory.informer_for("configmaps", new_lw, indexers={"b": lambda o: []})
    other = factory.informer_for("secrets", new_lw)
    assert first is second
    assert other is not first
    assert len(made) == 2
    assert first.indexer.list_index_names() == ["a", "b", "namespace"]


def test_factory_starts_all_and_waits_for_sync() -> None:
    factory = InformerFactory()
    lws = {k: ScriptedListerWatcher() for k in ("x", "y")}
    for key, lw in lws.items():
        lw.lists.append(ListPage([obj(key, "1")], "2"))
        factory.informer_for(key, lambda lw=lw: lw)  # type: ignore[misc]
    stop = threading.Event()
    factory.start(stop)
    try:
        assert factory.wait_for_cache_sync(stop, timeout=5)
        assert all(i.is_started() for i in factory.informers().values())
    finally:
        stop.set()
        factory.join()


def test_wait_for_cache_sync_times_out_on_the_clock() -> None:
    clock = FakeClock()
    stop = threading.Event()
    result: list[bool] = []
    t = threading.Thread(
        target=lambda: result.append(
            wait_for_cache_sync(stop, lambda: False, timeout=1.0, clock=clock)
        )
    )
    t.start()
    for _ in range(10):
        assert clock.block_until_waiters(1)
        clock.step(0.1)
    t.join(5)
    assert result == [False]
    assert wait_for_cache_sync(stop, lambda: True, timeout=0, clock=clock)
