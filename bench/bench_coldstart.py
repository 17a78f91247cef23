"""Cold start: N converged models + 4N converged templates already present → start the manager.

Seeding: aimctrl converges one model per image first (a real manager run, 10 images); those
models' statuses and templates (with their statuses) are replicated under N new names with the
model names, template names and uids substituted — exactly what aimctrl would have written for
them. Then the manager starts in a subprocess and the driver measures:

* time to caches synced (``/readyz`` 200, i.e. every informer has synced);
* time to the first reconcile pass done (every workqueue empty and idle, and
  ``controller_runtime_reconcile_total`` ≥ one reconcile per model per model controller and one
  per template);
* RSS then, beside the objects' JSON size (as listed, and without ``managedFields``) and beside
  an empty manager's RSS measured in the same run;
* API writes the manager made during that pass (target: zero; anything else is a bug).

    .venv/bin/python bench/bench_coldstart.py [--kubeconfig K] [--models 10000] [--scale 0.1]
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from common import (
    MODELS,
    SET_LABEL,
    TEMPLATES,
    Cluster,
    ManagerProcess,
    Shape,
    bench_parser,
    capture_shapes,
    cluster,
    create_replica,
    delete_all,
    mib,
    model_count,
    parallel,
    registry_with_images,
    start_profile,
    stop_profile,
    summarise_writes,
    table,
)

PREFIX = "cold"


def seed(c: Cluster, shapes: list[Shape], n: int, *, threads: int = 16) -> float:
    """Create ``n`` converged models with their converged templates; return seconds."""
    client = c.client

    def one(i: int) -> None:
        name, status, templates = create_replica(client, shapes[i % len(shapes)], PREFIX, i)
        client.patch_status(MODELS, name, {"status": status})
        for t in templates:
            t_status = t.pop("status", {})
            client.create(TEMPLATES, t)
            client.patch_status(TEMPLATES, t["metadata"]["name"], {"status": t_status})

    return parallel(one, n, threads=threads)


def json_size(c: Cluster) -> tuple[int, int, int]:
    """(objects, bytes as listed, bytes without managedFields) of models and templates."""
    count = full = trimmed = 0
    for resource in (MODELS, TEMPLATES):
        for obj in c.client.list(resource)["items"]:
            count += 1
            full += len(json.dumps(obj, separators=(",", ":")))
            obj["metadata"].pop("managedFields", None)
            trimmed += len(json.dumps(obj, separators=(",", ":")))
    return count, full, trimmed


def first_pass(
    manager: ManagerProcess, *, models: int, templates: int, timeout: float = 1800
) -> tuple[float, dict[str, float]]:
    """Wait until every queue is empty and idle and each controller reconciled its objects;
    return (seconds since the process started, reconcile_total by controller)."""
    deadline = time.monotonic() + timeout
    need = {"aimclustermodel": models, "template": templates}
    while True:
        manager.check_alive()
        samples = manager.metrics()
        by_controller = _by_label(samples, "controller_runtime_reconcile_total", "controller")
        depth = manager.sum_metric("workqueue_depth", samples)
        busy = manager.sum_metric("workqueue_unfinished_work_seconds", samples)
        gen = sum(v for k, v in by_controller.items() if k.startswith("template-gen"))
        done = (
            depth == 0
            and busy == 0
            and all(by_controller.get(k, 0) >= v for k, v in need.items())
            and gen >= models
        )
        if done:
            return time.monotonic() - manager.started_at, by_controller
        if time.monotonic() > deadline:
            raise TimeoutError(f"first pass not done: {by_controller}, depth {depth}")
        time.sleep(0.1)


def _by_label(samples: dict[str, float], name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in samples.items():
        if not key.startswith(name + "{"):
            continue
        for part in key[len(name) + 1 : -1].split(","):
            k, _, v = part.partition("=")
            if k == label:
                out[v.strip('"')] = out.get(v.strip('"'), 0) + value
    return out


def empty_manager_rss(c: Cluster) -> int:
    with ManagerProcess(c.kubeconfig, c.workdir) as manager:
        manager.wait_ready()
        time.sleep(2.0)
        return manager.rss()


def cold_start(c: Cluster, n: int, *, profile: bool = False) -> dict[str, Any]:
    before = c.metrics.requests()
    with ManagerProcess(c.kubeconfig, c.workdir) as manager:
        spy = start_profile(manager.pid, c.workdir / "coldstart.folded") if profile else None
        ready_s = manager.wait_ready()
        rss_ready = manager.rss()
        pass_s, reconciles = first_pass(manager, models=n, templates=4 * n)
        if spy is not None:
            stop_profile(spy, c.workdir / "coldstart.folded")
        time.sleep(2.0)  # a write still in flight after the queues drained is counted too
        rss = manager.rss()
        cpu = manager.cpu()
    writes = c.metrics.writes(before, c.metrics.requests())
    return {
        "ready_s": ready_s,
        "pass_s": pass_s,
        "rss": rss,
        "rss_ready": rss_ready,
        "cpu_s": cpu,
        "reconciles": reconciles,
        "writes": sum(writes.values()),
        "by_verb": summarise_writes(writes),
        "log": str(manager.log_path),
    }


def prepare(c: Cluster, n: int, images: int = 10) -> None:
    """Seed ``n`` converged models (+4n templates) unless they are there already."""
    present = len(c.client.list(MODELS, label_selector=f"{SET_LABEL}={PREFIX}")["items"])
    if present >= n:
        print(f"{present} seeded models already present", flush=True)
        return
    with registry_with_images(images) as imgs:
        shapes = capture_shapes(c, imgs.refs)
    delete_all(c)
    print(f"seeding {n} models + {4 * n} templates ...", flush=True)
    seconds = seed(c, shapes, n)
    print(f"seeded in {seconds:.0f} s ({10 * n / seconds:.0f} writes/s)", flush=True)


def main() -> None:
    parser = bench_parser(__doc__, models=10_000)
    parser.add_argument("--profile", action="store_true", help="py-spy the first pass")
    args = parser.parse_args()
    n = model_count(args)
    with contextlib.ExitStack() as stack:
        c = stack.enter_context(cluster(args.kubeconfig))
        baseline = empty_manager_rss(c)
        prepare(c, n)
        objects, full, trimmed = json_size(c)
        r = cold_start(c, n, profile=args.profile)
    print_results(n, objects, full, trimmed, baseline, r)


def print_results(
    n: int, objects: int, full: int, trimmed: int, baseline: int, r: dict[str, Any]
) -> None:
    grown = r["rss"] - baseline
    projected = r["ready_s"] * max(50_000 / objects, 1.0)  # pessimistic: startup scales too
    print()
    print(f"cold start: {n} models + {4 * n} templates = {objects} objects")
    print(
        table(
            ["quantity", "value", "target", "met"],
            [
                ["caches synced (/readyz 200), s", r["ready_s"], "-", "-"],
                ["  projected to 50k objects, s", projected, "<= 10", _met(projected <= 10)],
                ["first reconcile pass done, s", r["pass_s"], "-", "-"],
                ["API writes during the pass", r["writes"], "0", _met(r["writes"] == 0)],
                ["objects' JSON, MiB (as listed)", mib(full), "-", "-"],
                ["objects' JSON, MiB (no managedFields)", mib(trimmed), "-", "-"],
                ["manager RSS at /readyz, MiB", mib(r["rss_ready"]), "-", "-"],
                ["manager RSS, MiB", mib(r["rss"]), "-", "-"],
                ["empty manager RSS, MiB", mib(baseline), "-", "-"],
                ["RSS / JSON (as listed)", r["rss"] / full, "<= 3", _met(r["rss"] <= 3 * full)],
                ["(RSS - empty) / JSON (as listed)", grown / full, "<= 3", _met(grown <= 3 * full)],
                ["(RSS - empty) per object, KiB", grown / objects / 1024, "-", "-"],
                ["manager CPU to pass done, s", r["cpu_s"], "-", "-"],
            ],
        )
    )
    print(f"\nreconciles: {r['reconciles']}")
    print(f"writes: {r['by_verb'] or 'none'}")
    print(f"manager log: {r['log']}")


def _met(ok: bool) -> str:
    return "yes" if ok else "NO"


if __name__ == "__main__":
    main()
