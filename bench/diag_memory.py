"""Where the manager's memory goes after a cold start: ``tracemalloc`` in an in-process manager.

Seeds ``--models`` converged models (+4 templates each) like ``bench_coldstart.py``, starts a
:class:`~aimctrl.manager.Manager` in this process with ``tracemalloc`` on, waits until the caches
have synced and every queue is drained, then prints the allocation sites holding the most memory
(grouped by file and line) and the total per object. A diagnostic, not a ratio benchmark.

    .venv/bin/python bench/diag_memory.py [--models 2000] [--kubeconfig PATH]
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

from aimctrl.controllers.context import DiscoveryMode, Settings
from aimctrl.manager import Manager, ManagerOptions
from bench_coldstart import prepare
from common import cluster, rss_bytes, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", help="cluster to use (default: start apiserver + etcd)")
    parser.add_argument("--models", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    with cluster(args.kubeconfig) as c:
        prepare(c, args.models)
        gc.collect()
        rss0 = rss_bytes()
        tracemalloc.start(1)
        manager = Manager(
            ManagerOptions(
                kubeconfig=c.kubeconfig,
                metrics_bind_address="127.0.0.1:0",
                health_probe_bind_address="127.0.0.1:0",
                settings=Settings(
                    operator_namespace="default", discovery_mode=DiscoveryMode.INLINE
                ),
            )
        )
        manager.start()
        assert manager.informers.factory.wait_for_cache_sync(manager.stop, timeout=600)
        synced = tracemalloc.get_traced_memory()[0]
        rss_synced = rss_bytes()
        time.sleep(2.0)
        while any(len(ctl.queue) for ctl in manager.controllers):
            time.sleep(0.5)
        time.sleep(2.0)
        gc.collect()
        rss_pass = rss_bytes()
        snapshot = tracemalloc.take_snapshot()
        print(
            f"RSS growth, MiB (tracemalloc's own bookkeeping included): after sync "
            f"{(rss_synced - rss0) / 2**20:.1f}, after the first pass "
            f"{(rss_pass - rss0) / 2**20:.1f}"
        )
        objects = 5 * args.models
        total = sum(s.size for s in snapshot.statistics("filename"))
        print(
            f"traced after sync: {synced / 2**20:.1f} MiB; after the first pass: "
            f"{total / 2**20:.1f} MiB = {total / objects:.0f} B per cached object"
        )
        rows = [
            [
                f"{s.traceback[0].filename.rsplit('/', 2)[-1]}:{s.traceback[0].lineno}",
                s.size / 2**20,
                s.size / objects,
                s.count,
            ]
            for s in snapshot.statistics("lineno")[: args.top]
        ]
        print(table(["site", "MiB", "B/object", "blocks"], rows))
        manager.shutdown()


if __name__ == "__main__":
    main()
