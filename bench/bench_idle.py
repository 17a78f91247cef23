"""Idle: the manager's CPU over ``--seconds`` (default 300) with N models + 4N templates that are
already converged and do not change.

Seeding as in :mod:`bench_coldstart` (skipped when the seeded set is already there); the manager
starts, finishes its first reconcile pass, then the driver reads utime + stime from
``/proc/<pid>/stat`` at the start and end of the window (and the apiserver's write counters, which
must not move).

    .venv/bin/python bench/bench_idle.py [--kubeconfig K] [--models 10000] [--scale 0.1]
        [--seconds 300]
"""

from __future__ import annotations

import contextlib
import time

from bench_coldstart import first_pass, prepare
from common import ManagerProcess, bench_parser, cluster, mib, model_count, summarise_writes, table


def main() -> None:
    parser = bench_parser(__doc__, models=10_000)
    parser.add_argument("--seconds", type=float, default=300.0)
    args = parser.parse_args()
    n = model_count(args)
    with contextlib.ExitStack() as stack:
        c = stack.enter_context(cluster(args.kubeconfig))
        prepare(c, n)
        with ManagerProcess(c.kubeconfig, c.workdir) as manager:
            manager.wait_ready()
            pass_s, _ = first_pass(manager, models=n, templates=4 * n)
            print(f"first pass done after {pass_s:.1f} s; idling {args.seconds:.0f} s", flush=True)
            before = c.metrics.requests()
            cpu0, t0 = manager.cpu(), time.monotonic()
            time.sleep(args.seconds)
            cpu1, t1 = manager.cpu(), time.monotonic()
            reconciles = manager.sum_metric("controller_runtime_reconcile_total")
            rss = manager.rss()
        writes = c.metrics.writes(before, c.metrics.requests())
    share = (cpu1 - cpu0) / (t1 - t0)
    print()
    print(f"idle: {n} models + {4 * n} templates, {t1 - t0:.0f} s window")
    print(
        table(
            ["quantity", "value", "target", "met"],
            [
                ["CPU seconds in window", cpu1 - cpu0, "-", "-"],
                ["share of one core, %", 100 * share, "< 1", "yes" if share < 0.01 else "NO"],
                ["API writes in window", sum(writes.values()), "0", "-"],
                ["RSS at end, MiB", mib(rss), "-", "-"],
                ["reconciles since start", reconciles, "-", "-"],
            ],
        )
    )
    print(f"writes: {summarise_writes(writes) or 'none'}")


if __name__ == "__main__":
    main()
