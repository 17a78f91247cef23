"""Where the manager's memory goes after a cold start: ``tracemalloc`` in an in-process manager.

Seeds ``--models`` converged models (+4 templates each) like ``bench_coldstart.py``, starts a
:class:`~aimctrl.manager.Manager` in this process with ``tracemalloc`` on, waits until the caches
have synced and every queue is drained, then prints the allocation sites holding the most memory
(grouped by file and line) and the total per object. A diagnostic, not a ratio benchmark.

    .venv/bin/python bench/diag_memory.py [--models 2000] [--kubeconfig PATH]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import sys
import tempfile
import time
import tracemalloc

from aimctrl.controllers.context import DiscoveryMode, Settings
from aimctrl.manager import Manager, ManagerOptions
from bench_coldstart import prepare
from common import cluster, rss_bytes, table


def print_smaps() -> None:
    """RSS by kind of mapping: the heap, anonymous mappings by size (pymalloc arenas are 1 MiB,
    glibc thread arenas 64 MiB), files."""
    groups: dict[str, int] = {}
    name = ""
    size = 0
    with open("/proc/self/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                size = hi - lo
                name = parts[5] if len(parts) > 5 else ""
            elif parts[0] == "Rss:":
                kb = int(parts[1])
                if name.startswith("/"):
                    key = "files"
                elif name:
                    key = name
                else:
                    key = f"anon {size // 2**20} MiB" if size >= 2**20 else "anon < 1 MiB"
                groups[key] = groups.get(key, 0) + kb
    rows = sorted(groups.items(), key=lambda kv: -kv[1])
    print(table(["mapping", "RSS MiB"], [[k, v / 1024] for k, v in rows[:12]]))


def print_pymalloc() -> None:
    """The summary of CPython's small-object allocator: blocks in use against arenas held."""
    with tempfile.TemporaryFile() as f:
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read().decode(errors="replace")
    for line in text.splitlines():
        if line.startswith("#") or "bytes in" in line or "Total" in line:
            print("  " + line.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", help="cluster to use (default: start apiserver + etcd)")
    parser.add_argument("--models", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--no-trace", action="store_true", help="RSS only (no tracemalloc), then malloc_trim"
    )
    args = parser.parse_args()
    with cluster(args.kubeconfig) as c:
        prepare(c, args.models)
        gc.collect()
        rss0 = rss_bytes()
        if not args.no_trace:
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
        if args.no_trace:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            print(
                f"RSS growth, MiB: after sync {(rss_synced - rss0) / 2**20:.1f}, after the first "
                f"pass {(rss_pass - rss0) / 2**20:.1f}, "
                f"after malloc_trim(0) {(rss_bytes() - rss0) / 2**20:.1f}"
            )
            print_smaps()
            print_pymalloc()
            manager.shutdown()
            return
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
