"""The reflector's list/watch state machine against a scripted ListerWatcher and a fake clock."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import pytest

from aimctrl.machinery.clock import FakeClock
from aimctrl.machinery.listwatch import GoneError, ListPage, WatchError
from aimctrl.machinery.reflector import Backoff, Reflector
from aimctrl.machinery.store import Indexer
from aimctrl.testing.fakes import ScriptedListerWatcher, bookmark, error_event, ev, obj

pytestmark = pytest.mark.timeout(20)


class Harness:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.lw = ScriptedListerWatcher()
        self.store = Indexer()
        self.stop = threading.Event()
        self.reflector = Reflector(
            self.lw,
            self.store,
            name="test",
            clock=self.clock,
            rand=random.Random(7),  # noqa: S311 - seeded for reproducible timeouts
            backoff=Backoff(clock=self.clock, rand=lambda: 1.0),
        )
        self.thread = threading.Thread(target=self.reflector.run, args=(self.stop,), daemon=True)

    def start(self) -> None:
        self.thread.start()

    def run_until_idle(self) -> None:
        self.start()
        assert self.lw.idle.wait(5), "reflector never reached the final watch"

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive(), "reflector did not stop"

    def keys(self) -> list[str]:
        return sorted(self.store.list_keys())


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.close()


def test_initial_list_pages_through_continue_tokens_then_watches_from_list_rv(h: Harness) -> None:
    h.lw.lists.extend(
        [
            ListPage([obj("a", "3"), obj("b", "4")], "10", continue_="tok1"),
            ListPage([obj("c", "5")], "10", continue_=None),
        ]
    )
    h.run_until_idle()

    assert [(c.limit, c.continue_, c.resource_version) for c in h.lw.list_calls] == [
        (500, None, ""),
        (500, "tok1", None),
    ]
    assert h.keys() == ["ns/a", "ns/b", "ns/c"]
    assert h.reflector.has_synced()
    watch = h.lw.watch_calls[0]
    assert watch.resource_version == "10"
    assert watch.allow_bookmarks
    assert 300 <= watch.timeout_seconds <= 600


def test_rv_advances_from_ordered_events_and_bookmarks(h: Harness) -> None:
    h.lw.lists.append(ListPage([obj("a", "3")], "10"))
    h.lw.watches.append(
        [ev("ADDED", obj("b", "11")), ev("MODIFIED", obj("a", "12")), bookmark("15")]
    )
    h.lw.watches.append([ev("DELETED", obj("b", "16"))])
    h.run_until_idle()

    assert [c.resource_version for c in h.lw.watch_calls] == ["10", "15", "16"]
    assert h.reflector.last_sync_resource_version() == "16"
    assert h.keys() == ["ns/a"]
    assert h.store.get_by_key("ns/a")["metadata"]["resourceVersion"] == "12"  # type: ignore[index]


def test_synthetic_added_events_of_an_rv_less_watch_do_not_advance_the_rv(h: Harness) -> None:
    # A server that answers the list without an RV makes the reflector watch from "":
    # the replayed ADDED events come in no RV order, so only the MODIFIED event may move the RV.
    h.lw.lists.append(ListPage([], ""))
    h.lw.watches.append([ev("ADDED", obj("a", "9")), ev("ADDED", obj("b", "7"))])
    h.lw.watches.append([ev("ADDED", obj("c", "8")), ev("MODIFIED", obj("a", "20"))])
    h.run_until_idle()

    # The first watch ended without an ordered event, so the second starts at "" again.
    assert [c.resource_version for c in h.lw.watch_calls] == ["", "", "20"]
    assert h.keys() == ["ns/a", "ns/b", "ns/c"]


def test_clean_watch_end_rewatches_without_relisting(h: Harness) -> None:
    h.lw.lists.append(ListPage([obj("a", "3")], "10"))
    h.lw.watches.append([bookmark("12")])
    h.lw.watches.append([bookmark("13")])
    h.run_until_idle()

    assert len(h.lw.list_calls) == 1
    assert [c.resource_version for c in h.lw.watch_calls] == ["10", "12", "13"]
    assert h.clock.waiter_count() == 0, "a clean end must not back off"


def test_gone_relists_at_last_rv_unpaged_and_drops_vanished_objects(h: Harness) -> None:
    h.lw.lists.append(ListPage([obj("a", "3"), obj("b", "4")], "10"))
    h.lw.watches.append([bookmark("14"), GoneError()])
    h.lw.lists.append(ListPage([obj("a", "30"), obj("c", "31")], "40"))
    h.start()
    assert h.lw.wait_calls(lists=1, watches=1)
    assert h.clock.block_until_waiters(1), "the relist waits on the backoff"
    h.clock.step(0.8)
    assert h.lw.idle.wait(5)

    assert [(c.limit, c.resource_version) for c in h.lw.list_calls] == [(500, ""), (None, "14")]
    assert h.keys() == ["ns/a", "ns/c"]
    assert h.lw.watch_calls[-1].resource_version == "40"


def test_gone_on_relist_falls_back_to_a_consistent_paged_list(h: Harness) -> None:
    h.lw.lists.append(ListPage([obj("a", "3")], "10"))
    h.lw.watches.append([error_event(410)])
    h.lw.lists.append(GoneError())
    h.lw.lists.append(ListPage([obj("b", "50")], "50"))
    h.start()
    assert h.clock.block_until_waiters(1)
    h.clock.step(0.8)
    assert h.lw.idle.wait(5)

    assert [(c.limit, c.resource_version) for c in h.lw.list_calls] == [
        (500, ""),
        (None, "10"),
        (500, ""),
    ]
    assert h.keys() == ["ns/b"]
    assert h.reflector.last_sync_resource_version() == "50"


def test_expired_continue_token_restarts_the_list_unpaged(h: Harness) -> None:
    h.lw.lists.extend(
        [
            ListPage([obj("a", "3")], "10", continue_="tok"),
            GoneError("continue token expired"),
            ListPage([obj("a", "3"), obj("b", "4")], "11"),
        ]
    )
    h.run_until_idle()

    assert [(c.limit, c.continue_, c.resource_version) for c in h.lw.list_calls] == [
        (500, None, ""),
        (500, "tok", None),
        (None, None, ""),
    ]
    assert h.keys() == ["ns/a", "ns/b"]
    assert h.lw.watch_calls[0].resource_version == "11"


def test_list_failure_backs_off_on_the_clock_before_retrying(h: Harness) -> None:
    h.lw.lists.append(WatchError("boom", status=500))
    h.lw.lists.append(WatchError("boom", status=500))
    h.lw.lists.append(ListPage([obj("a", "3")], "10"))
    h.start()

    assert h.clock.block_until_waiters(1)
    h.clock.step(0.79)
    assert h.clock.waiter_count() == 1, "woke before the 0.8 s backoff elapsed"
    assert len(h.lw.list_calls) == 1
    h.clock.step(0.01)
    assert h.lw.wait_calls(lists=2)
    assert h.clock.block_until_waiters(1)
    h.clock.step(1.59)
    assert h.clock.waiter_count() == 1, "second backoff must double to 1.6 s"
    h.clock.step(0.01)
    assert h.lw.idle.wait(5)
    assert h.reflector.has_synced()
    assert h.keys() == ["ns/a"]


def test_throttled_watch_open_rewatches_after_backoff_without_relisting(h: Harness) -> None:
    h.lw.lists.append(ListPage([obj("a", "3")], "10"))
    h.lw.watches.append(WatchError("slow down", status=429))
    h.start()
    assert h.clock.block_until_waiters(1)
    h.clock.step(0.8)
    assert h.lw.idle.wait(5)

    assert len(h.lw.list_calls) == 1
    assert [c.resource_version for c in h.lw.watch_calls] == ["10", "10"]


def test_other_error_event_relists_after_backoff(h: Harness) -> None:
    h.lw.lists.append(ListPage([obj("a", "3")], "10"))
    h.lw.watches.append([ev("MODIFIED", obj("a", "11")), error_event(500)])
    h.lw.lists.append(ListPage([obj("a", "12")], "12"))
    h.start()
    assert h.clock.block_until_waiters(1)
    h.clock.step(0.8)
    assert h.lw.idle.wait(5)

    assert [c.resource_version for c in h.lw.list_calls] == ["", "11"]
    assert h.lw.watch_calls[-1].resource_version == "12"


def test_watch_that_ends_at_once_without_events_counts_as_error(h: Harness) -> None:
    h.lw.lists.append(ListPage([], "10"))
    h.lw.watches.append([])
    h.start()
    assert h.clock.block_until_waiters(1), "an empty instant watch must back off"
    assert len(h.lw.watch_calls) == 1
    h.clock.step(0.8)
    assert h.lw.idle.wait(5)
    assert len(h.lw.list_calls) == 1


def test_stop_during_backoff_returns_promptly(h: Harness) -> None:
    h.lw.lists.append(WatchError("down", status=None))
    h.start()
    assert h.clock.block_until_waiters(1)
    h.stop.set()
    h.thread.join(5)
    assert not h.thread.is_alive()


def test_backoff_doubles_to_the_cap_and_resets_after_two_healthy_minutes() -> None:
    clock = FakeClock()
    backoff = Backoff(clock=clock, rand=lambda: 1.0)
    delays = [backoff.next_delay() for _ in range(8)]
    assert delays == pytest.approx([0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0])
    clock.step(119)
    assert backoff.next_delay() == pytest.approx(30.0)
    clock.step(121)
    assert backoff.next_delay() == pytest.approx(0.8)


def test_backoff_jitter_is_full_range_of_the_current_ceiling() -> None:
    clock = FakeClock()
    backoff = Backoff(clock=clock, rand=lambda: 0.25)
    assert backoff.next_delay() == pytest.approx(0.2)
    assert backoff.next_delay() == pytest.approx(0.4)


def test_a_transform_runs_page_by_page_and_once_per_object() -> None:
    lw = ScriptedListerWatcher()
    lw.lists.extend(
        [
            ListPage([obj("a", "3"), obj("b", "4")], "10", continue_="tok"),
            ListPage([obj("c", "5")], "10"),
        ]
    )
    calls: list[tuple[str, int]] = []  # (name, list requests made when it was transformed)

    def transform(o: dict[str, object]) -> dict[str, object]:
        meta = o["metadata"]
        assert isinstance(meta, dict)
        calls.append((meta["name"], len(lw.list_calls)))
        return {**o, "transformed": True}

    store = Indexer(transform=transform)
    clock = FakeClock()
    reflector = Reflector(
        lw, store, name="t", clock=clock, transform=store.transform, backoff=Backoff(clock=clock)
    )
    stop = threading.Event()
    thread = threading.Thread(target=reflector.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert lw.idle.wait(5)
        assert calls == [("a", 1), ("b", 1), ("c", 2)]  # page one before page two was asked for
        assert all(o["transformed"] for o in store.list())
    finally:
        stop.set()
        thread.join(5)
