"""Convergence: N AIMClusterModels (inline discovery, 10 distinct images on a local registry,
4 recommended deployments each, autoCreateTemplates) → all Ready with 4N templates Ready.

One run, one apiserver, three phases, each starting from an empty set of models/templates:

1. **write floor** (:mod:`bench_write_floor`): the same N with a plain client loop;
2. **aimctrl**: ``python -m aimctrl run --discovery-mode=inline`` in a subprocess; the driver
   creates the N models (``--threads`` threads) once the manager is ready;
3. **kopf** (:mod:`peers.kopf_operator` under ``kopf run``), same creation.

Time = first model create → the driver's informers see every model and every template with
``status.status: Ready``. Writes = the apiserver's ``apiserver_request_total`` (mutating verbs,
leases excluded) over the phase; registry requests through a counting proxy; CPU and peak RSS
of the controller process from ``/proc``.

    .venv/bin/python bench/bench_convergence.py [--kubeconfig K] [--models 1000] [--scale 0.1]
        [--skip-kopf]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench_write_floor import measure_floor
from common import (
    MODELS as MODELS_RESOURCE,
)
from common import (
    SET_LABEL,
    Cluster,
    CountingProxy,
    ManagerProcess,
    Watcher,
    bench_parser,
    capture_shapes,
    cluster,
    cpu_seconds,
    delete_all,
    free_port,
    mib,
    model_body,
    model_count,
    model_name,
    parallel,
    registry_with_images,
    rss_bytes,
    start_profile,
    stop_profile,
    summarise_writes,
    table,
)

HERE = Path(__file__).resolve().parent


class KopfProcess:
    """``kopf run --standalone --all-namespaces bench/peers/kopf_operator.py``."""

    def __init__(self, kubeconfig: str, workdir: Path) -> None:
        self.kubeconfig, self.workdir = kubeconfig, workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> KopfProcess:
        kopf = Path(sys.executable).parent / "kopf"
        log = (self.workdir / "kopf.log").open("ab")
        self.proc = subprocess.Popen(
            [
                str(kopf),
                "run",
                "--standalone",
                "--all-namespaces",
                f"--liveness=http://127.0.0.1:{self.port}/healthz",
                str(HERE / "peers" / "kopf_operator.py"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "KUBECONFIG": self.kubeconfig, "PYTHONPATH": str(HERE)},
        )
        log.close()
        return self

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"kopf exited: {(self.workdir / 'kopf.log').read_text()[-3000:]}"
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError("kopf not ready")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class PeakRss:
    """Samples a process's RSS every 0.2 s in a thread; ``peak`` is the largest seen."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, rss_bytes(self.pid))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def converge(
    c: Cluster,
    proxy: CountingProxy,
    refs: list[str],
    *,
    n: int,
    threads: int,
    prefix: str,
    pid: Callable[[], int],
    timeout: float,
) -> dict[str, Any]:
    """Create ``n`` models over ``refs`` and wait for all of them and their templates Ready."""
    watcher = Watcher(c.client)
    try:
        watcher.wait_synced()
        proxy.reset()
        before = c.metrics.requests()
        cpu0 = cpu_seconds(pid())
        peak = PeakRss(pid())

        def create(i: int) -> None:
            body = model_body(model_name(prefix, i), refs[i % len(refs)])
            body["metadata"]["labels"][SET_LABEL] = prefix
            c.client.create(MODELS_RESOURCE, body)

        t0 = time.monotonic()
        create_s = parallel(create, n, threads=threads)
        t1 = watcher.wait_converged(prefix, n, 4, timeout=timeout)
        seconds = t1 - t0
        at_converged = c.metrics.writes(before, c.metrics.requests())
        time.sleep(3.0)  # writes still trickling in after convergence are counted too
        writes = c.metrics.writes(before, c.metrics.requests())
        cpu = cpu_seconds(pid()) - cpu0
        rss_peak = peak.stop()
        registry = proxy.snapshot()
    finally:
        watcher.close()
    return {
        "seconds": seconds,
        "create_s": create_s,
        "writes": sum(writes.values()),
        "writes_at_converged": sum(at_converged.values()),
        "model_creates": n,
        "by_verb": summarise_writes(writes),
        "registry_requests": sum(registry.values()),
        "registry_manifest_gets": registry.get(("GET", "manifests"), 0),
        "cpu_s": cpu,
        "rss_peak_mib": mib(rss_peak),
    }


def main() -> None:
    parser = bench_parser(__doc__, models=1000)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--threads", type=int, default=8, help="driver/floor client threads")
    parser.add_argument("--workers", type=int, default=4, help="aimctrl workers per controller")
    parser.add_argument("--skip-kopf", action="store_true")
    parser.add_argument("--profile", action="store_true", help="py-spy aimctrl's convergence")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    n = model_count(args)
    results: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        c = stack.enter_context(cluster(args.kubeconfig))
        images = stack.enter_context(registry_with_images(args.images, counting=True))
        proxy = images.proxy
        assert proxy is not None
        shapes = capture_shapes(c, images.refs)
        delete_all(c)

        print(f"[1/3] write floor, {n} models", flush=True)
        floor = measure_floor(c, shapes, n=n, threads=args.threads)
        results["write floor"] = {**floor, "cpu_s": None, "rss_peak_mib": None}
        delete_all(c)

        print(f"[2/3] aimctrl, {n} models", flush=True)
        manager = ManagerProcess(c.kubeconfig, c.workdir, workers=args.workers)
        with manager:
            manager.wait_ready()
            spy_out = c.workdir / "convergence.pyspy.txt"
            spy = start_profile(manager.pid, spy_out, gil=True) if args.profile else None
            results["aimctrl"] = converge(
                c,
                proxy,
                images.refs,
                n=n,
                threads=args.threads,
                prefix="aim",
                pid=lambda: manager.pid,
                timeout=args.timeout,
            )
            if spy is not None:
                stop_profile(spy, spy_out)
            samples = manager.metrics()
            results["aimctrl"]["reconciles"] = manager.sum_metric(
                "controller_runtime_reconcile_total", samples
            )
        print(f"  manager log: {manager.log_path}", flush=True)
        delete_all(c)

        if not args.skip_kopf:
            print(f"[3/3] kopf, {n} models", flush=True)
            with KopfProcess(c.kubeconfig, c.workdir) as kopf:
                kopf.wait_ready()
                results["kopf"] = converge(
                    c,
                    proxy,
                    images.refs,
                    n=n,
                    threads=args.threads,
                    prefix="kopf",
                    pid=lambda: kopf.pid,
                    timeout=args.timeout,
                )
            delete_all(c)
    print_results(n, args, results)


def print_results(n: int, args: argparse.Namespace, results: dict[str, dict[str, Any]]) -> None:
    floor_s = results["write floor"]["seconds"]
    rows = []
    for name, r in results.items():
        rows.append(
            [
                name,
                r["seconds"],
                r["seconds"] / floor_s,
                r["writes"],
                r["writes"] / n,
                r.get("registry_manifest_gets", "-"),
                "-" if r.get("cpu_s") is None else r["cpu_s"],
                "-" if r.get("rss_peak_mib") is None else r["rss_peak_mib"],
            ]
        )
    print()
    print(
        f"convergence: {n} models x 4 templates, {args.images} images, "
        f"driver threads {args.threads}, aimctrl workers/controller {args.workers}"
    )
    print(
        table(
            [
                "variant",
                "seconds",
                "x floor",
                "writes",
                "writes/model",
                "manifest GETs",
                "CPU s",
                "peak RSS MiB",
            ],
            rows,
        )
    )
    if "kopf" in results and "aimctrl" in results:
        ratio = results["kopf"]["seconds"] / results["aimctrl"]["seconds"]
        print(
            f"\nkopf / aimctrl time: {ratio:.2f}x (target >= 5x); "
            f"aimctrl / floor: {results['aimctrl']['seconds'] / floor_s:.2f}x (target <= 1.3x)"
        )
    for name, r in results.items():
        print(f"{name} writes: {r['by_verb']}")
    if "aimctrl" in results:
        print(f"aimctrl reconciles: {results['aimctrl']['reconciles']:.0f}")


if __name__ == "__main__":
    main()
