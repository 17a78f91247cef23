"""Discovery: per-image label-read latency warm/cold, and registry requests per discovery round.

Against a local ``docker-registry`` with 10 images behind a counting proxy:

* **cold**: :func:`aimctrl.discovery.discover` with a fresh ``RegistryClient`` per call (what the
  inline reconciler does per model);
* **warm**: one ``RegistryClient`` reused (connections kept);
* **subprocess**: ``python -m aimctrl discover IMAGE --json`` (what a discovery Job runs; the
  interpreter's start-up included);
* **a round of N models over 10 images**: N calls the way the inline reconciler makes them (one
  per model), beside the same N through :class:`aimctrl.discovery.cache.DiscoveryCache`
  (opt-in, keyed by image + credentials identity, 30 s TTL). Target: one read per distinct image.

The real manager's count for the same round is the ``manifest GETs`` column of
:mod:`bench_convergence` (it uses the same counting proxy).

    .venv/bin/python bench/bench_discovery.py [--models 1000] [--scale 0.1] [--repeat 50]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable

from aimctrl.discovery.cache import DiscoveryCache
from aimctrl.discovery.discover import discover
from aimctrl.discovery.registry import RegistryClient
from common import bench_parser, model_count, registry_with_images, table


def latencies(fn: Callable[[int], object], repeat: int) -> list[float]:
    out = []
    for i in range(repeat):
        start = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = bench_parser(__doc__, models=1000, cluster=False)
    parser.add_argument("--repeat", type=int, default=50, help="samples per latency row")
    args = parser.parse_args()
    n = model_count(args)
    rows = []
    with registry_with_images(10, counting=True) as images:
        proxy = images.proxy
        assert proxy is not None
        refs = images.refs

        def row(name: str, samples: list[float], requests: int) -> None:
            ms = sorted(s * 1000 for s in samples)
            p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
            rows.append([name, len(ms), statistics.median(ms), p95, requests / len(ms)])

        discover(refs[0])  # imports and first-connection costs out of the way
        proxy.reset()
        row(
            "cold (fresh client)",
            latencies(lambda i: discover(refs[i % 10]), args.repeat),
            sum(proxy.snapshot().values()),
        )
        with RegistryClient() as client:
            discover(refs[0], client=client)
            proxy.reset()
            row(
                "warm (reused client)",
                latencies(lambda i: discover(refs[i % 10], client=client), args.repeat),
                sum(proxy.snapshot().values()),
            )
        proxy.reset()
        sub = max(3, args.repeat // 10)
        row(
            "aimctrl discover (subprocess)",
            latencies(
                lambda i: subprocess.run(
                    [sys.executable, "-m", "aimctrl", "discover", refs[i % 10], "--json"],
                    check=True,
                    capture_output=True,
                ),
                sub,
            ),
            sum(proxy.snapshot().values()),
        )

        proxy.reset()
        start = time.perf_counter()
        for i in range(n):
            discover(refs[i % 10])
        per_model_s = time.perf_counter() - start
        per_model = proxy.snapshot()
        proxy.reset()
        cache = DiscoveryCache(ttl=30.0)
        start = time.perf_counter()
        for i in range(n):
            cache.discover(refs[i % 10])
        cached_s = time.perf_counter() - start
        cached = proxy.snapshot()

    print()
    print("per-image label read (manifest + config blob), ms")
    print(table(["variant", "samples", "median ms", "p95 ms", "registry req/read"], rows))
    print()
    print(f"one discovery round: {n} models over 10 images")
    print(
        table(
            [
                "path",
                "registry requests",
                "manifest GETs",
                "blob GETs",
                "req / distinct image",
                "seconds",
            ],
            [
                _round_row(
                    "one discover() per model (session 1 inline path)", per_model, per_model_s
                ),
                _round_row("DiscoveryCache (30 s TTL, inline path today)", cached, cached_s),
            ],
        )
    )


def _round_row(path: str, requests: Counter[tuple[str, str]], seconds: float) -> list[object]:
    total = sum(requests.values())
    manifests, blobs = requests[("GET", "manifests")], requests[("GET", "blobs")]
    return [path, total, manifests, blobs, total / 10, seconds]


if __name__ == "__main__":
    main()
