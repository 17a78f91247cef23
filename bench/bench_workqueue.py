"""Workqueue throughput: add/get/done cycles per second, ours beside ``queue.Queue`` in one run.

One "op" is one item going through add → get → done (``put`` → ``get`` → ``task_done`` for the
baseline). Runs single-threaded (add everything, then drain) and with 4 worker threads draining
while the main thread adds. Keys are distinct ints, so dedupe never collapses them; the unnamed
queue records no metrics, like the baseline.

    .venv/bin/python bench/bench_workqueue.py [--items N] [--repeat R]
"""

from __future__ import annotations

import argparse
import queue
import threading
import time
from collections.abc import Callable

from aimctrl.machinery.queue import Queue
from aimctrl.machinery.ratelimitingqueue import RateLimitingQueue

WORKERS = 4


def ours_single(n: int, make: Callable[[], Queue[int]]) -> float:
    q = make()
    start = time.perf_counter()
    for i in range(n):
        q.add(i)
    for _ in range(n):
        key, _ = q.get()
        q.done(key)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - start
    q.shut_down()
    return n / elapsed


def baseline_single(n: int) -> float:
    q: queue.Queue[int] = queue.Queue()
    start = time.perf_counter()
    for i in range(n):
        q.put(i)
    for _ in range(n):
        q.get()
        q.task_done()
    return n / (time.perf_counter() - start)


def ours_threaded(n: int, make: Callable[[], Queue[int]]) -> float:
    q = make()

    def work() -> None:
        while True:
            key, shutdown = q.get()
            if shutdown or key is None:
                return
            q.done(key)

    threads = [threading.Thread(target=work) for _ in range(WORKERS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for i in range(n):
        q.add(i)
    q.shut_down()  # workers still drain what is queued, then see shutdown
    for t in threads:
        t.join()
    return n / (time.perf_counter() - start)


def baseline_threaded(n: int) -> float:
    q: queue.Queue[int | None] = queue.Queue()

    def work() -> None:
        while True:
            item = q.get()
            q.task_done()
            if item is None:
                return

    threads = [threading.Thread(target=work) for _ in range(WORKERS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for i in range(n):
        q.put(i)
    for _ in threads:
        q.put(None)
    for t in threads:
        t.join()
    return n / (time.perf_counter() - start)


def best(fn: Callable[[], float], repeat: int) -> float:
    return max(fn() for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n, r = args.items, args.repeat

    def base_queue() -> Queue[int]:
        return Queue()

    def rl_queue() -> Queue[int]:
        return RateLimitingQueue()  # add() also drops any delayed entry: one more lock

    rows = [
        ("single thread", "Queue", best(lambda: ours_single(n, base_queue), r),
         best(lambda: baseline_single(n), r)),
        ("single thread", "RateLimitingQueue", best(lambda: ours_single(n, rl_queue), r),
         best(lambda: baseline_single(n), r)),
        (f"{WORKERS} workers", "Queue", best(lambda: ours_threaded(n, base_queue), r),
         best(lambda: baseline_threaded(n), r)),
        (f"{WORKERS} workers", "RateLimitingQueue", best(lambda: ours_threaded(n, rl_queue), r),
         best(lambda: baseline_threaded(n), r)),
    ]  # fmt: skip
    print(f"items={n} repeat={r} (best of), ops = add+get+done per item, items/s")
    print(f"{'mode':<14} {'ours':<18} {'ours ops/s':>12} {'queue.Queue':>12} {'ratio':>7}")
    for mode, kind, ours, base in rows:
        print(f"{mode:<14} {kind:<18} {ours:>12,.0f} {base:>12,.0f} {ours / base:>7.2f}")


if __name__ == "__main__":
    main()
