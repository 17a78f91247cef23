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
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from aimctrl.kube.resources import CORE_EVENT
from aimctrl.testing.controlplane import free_port
from bench_write_floor import FIELD_MANAGER as FLOOR_FIELD_MANAGER
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


def reconciles_by_controller(samples: dict[str, float]) -> dict[str, float]:
    """``controller_runtime_reconcile_total`` summed over results, per controller label."""
    totals: dict[str, float] = {}
    for key, value in samples.items():
        if not key.startswith("controller_runtime_reconcile_total{"):
            continue
        found = re.search(r'controller="([^"]*)"', key)
        name = found.group(1) if found else "?"
        totals[name] = totals.get(name, 0.0) + value
    return totals


class CpuShare:
    """CPU seconds of each process during a phase: the plane's kube-apiserver and etcd, the
    operator, and this process (the driver, the watcher and, in the floor phases, the writer)."""

    def __init__(self, c: Cluster, operator_pid: int | None = None) -> None:
        self._c = c
        self._pid = operator_pid
        self._start = self._now()

    def _now(self) -> dict[str, float]:
        out = dict(self._c.plane_cpu())
        out["operator"] = cpu_seconds(self._pid) if self._pid else 0.0
        out["bench"] = cpu_seconds()
        return out

    def stop(self) -> dict[str, float]:
        end = self._now()
        return {k: end[k] - self._start[k] for k in end}


def event_reasons(c: Cluster) -> dict[str, int]:
    """The operator's core events in the cluster by reason (the floor's own are left out)."""
    counts: dict[str, int] = {}
    for event in c.client.list(CORE_EVENT)["items"]:
        if (event.get("source") or {}).get("component") == FLOOR_FIELD_MANAGER:
            continue
        reason = str(event.get("reason") or "?")
        counts[reason] = counts.get(reason, 0) + 1
    return counts


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

        share = CpuShare(c, pid())
        t0 = time.monotonic()
        create_s = parallel(create, n, threads=threads)
        t1 = watcher.wait_converged(prefix, n, 4, timeout=timeout)
        seconds = t1 - t0
        cpu_share = share.stop()
        at_converged = c.metrics.writes(before, c.metrics.requests())
        time.sleep(3.0)  # writes still trickling in after convergence are counted too
        writes = c.metrics.writes(before, c.metrics.requests())
        cpu = cpu_seconds(pid()) - cpu0
        events = event_reasons(c)
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
        "events_by_reason": events,
        "cpu_share": cpu_share,
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
    parser.add_argument(
        "--no-spec-floor",
        dest="spec_floor",
        action="store_false",
        help="skip the floor phase that replays aimctrl's 15 writes per model",
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="gil",
        choices=("gil", "all"),
        help="py-spy aimctrl's convergence: gil (Python CPU only, the default) or all (every "
        "busy thread, time in C and in system calls included)",
    )
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

        def floor_phase(label: str, **kwargs: Any) -> None:
            print(f"[1/3] {label}, {n} models", flush=True)
            share = CpuShare(c)
            floor = measure_floor(c, shapes, n=n, threads=args.threads, **kwargs)
            results[label] = {**floor, "cpu_s": None, "rss_peak_mib": None}
            results[label]["cpu_share"] = share.stop()
            delete_all(c)

        floor_phase("write floor")
        if args.spec_floor:
            # The same loop, replaying the write set aimctrl makes under the SPEC: the model's
            # status once per transition (discovery, templates generated, Ready) and one event
            # per transition (three), 15 writes per model, no controller logic at all.
            floor_phase("floor, SPEC set", prefix="spec", status_steps=3, events=3)

        print(f"[2/3] aimctrl, {n} models", flush=True)
        manager = ManagerProcess(c.kubeconfig, c.workdir, workers=args.workers)
        with manager:
            manager.wait_ready()
            spy_out = c.workdir / "convergence.pyspy.txt"
            spy = (
                start_profile(manager.pid, spy_out, gil=args.profile == "gil")
                if args.profile
                else None
            )
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
            results["aimctrl"]["reconciles_by_controller"] = reconciles_by_controller(samples)
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
    share_rows = []
    for name, r in results.items():
        share = r.get("cpu_share")
        if not share:
            continue
        total = sum(share.values())
        share_rows.append(
            [
                name,
                r["seconds"],
                share.get("kube-apiserver", 0.0),
                share.get("etcd", 0.0),
                share.get("operator", 0.0),
                share.get("bench", 0.0),
                total,
                100 * total / ((os.cpu_count() or 1) * r["seconds"]),
            ]
        )
    if share_rows:
        print("\nCPU seconds by process during each phase (busy % of all cores):")
        print(
            table(
                ["variant", "seconds", "apiserver", "etcd", "operator", "bench", "total", "busy %"],
                share_rows,
            )
        )
    if "floor, SPEC set" in results and "aimctrl" in results:
        spec_s = results["floor, SPEC set"]["seconds"]
        print(
            f"aimctrl / floor with its own write set: {results['aimctrl']['seconds'] / spec_s:.2f}x"
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
        reasons = results["aimctrl"].get("events_by_reason") or {}
        print(
            "  events by reason: "
            + ", ".join(f"{k}={v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]))
        )
        by_controller = results["aimctrl"].get("reconciles_by_controller") or {}
        print(
            "  by controller: "
            + ", ".join(f"{k}={v:.0f}" for k, v in sorted(by_controller.items()))
        )


if __name__ == "__main__":
    main()
