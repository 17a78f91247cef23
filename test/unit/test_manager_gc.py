"""The manager's garbage-collector policy: off while the caches fill, frozen and on after."""

from __future__ import annotations

import gc
import time

from aimctrl.manager import Manager, ManagerOptions
from aimctrl.testing.fakeclient import FakeKubeClient


def test_gc_is_off_until_the_caches_sync_then_frozen_and_on_again() -> None:
    manager = Manager(
        ManagerOptions(
            metrics_bind_address="127.0.0.1:0",
            health_probe_bind_address="127.0.0.1:0",
            tune_gc=True,
        ),
        client=FakeKubeClient(),
    )
    assert gc.isenabled()
    gc.unfreeze()
    try:
        manager.start()
        deadline = time.monotonic() + 10
        while not (gc.isenabled() and gc.get_freeze_count() > 0):
            assert time.monotonic() < deadline, "the GC was never switched on again"
            time.sleep(0.02)
        assert all(i.has_synced() for i in manager.informers.factory.informers().values())
    finally:
        manager.shutdown()
        gc.unfreeze()
        gc.enable()


def test_in_process_managers_leave_the_gc_alone() -> None:
    manager = Manager(
        ManagerOptions(metrics_bind_address="127.0.0.1:0", health_probe_bind_address="127.0.0.1:0"),
        client=FakeKubeClient(),
    )
    gc.unfreeze()
    try:
        manager.start()
        assert manager.informers.factory.wait_for_cache_sync(manager.stop, timeout=10)
        assert gc.isenabled()
        assert gc.get_freeze_count() == 0
    finally:
        manager.shutdown()
