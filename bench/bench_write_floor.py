"""Write floor: the apiserver's own limit on the writes aimctrl must make for N models.

A plain client loop (``KubeClient``, ``--threads`` threads, like the manager's workers) does, per
model, the ten writes a converging model needs at the least: create the model, apply its status,
apply four templates and apply each template's status. Bodies are the ones aimctrl itself wrote
for a model of the same image (captured from a one-model manager run at the start), renamed.
Reports writes/s as the apiserver counted them (``apiserver_request_total``).

    .venv/bin/python bench/bench_write_floor.py [--kubeconfig K] [--models 1000] [--scale 0.1]
        [--threads 8]
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from aimctrl.api.v1alpha1.common import API_VERSION
from aimctrl.kube.resources import CORE_EVENT
from common import (
    MODELS,
    SET_LABEL,
    TEMPLATES,
    Cluster,
    Shape,
    bench_parser,
    capture_shapes,
    cluster,
    create_replica,
    delete_all,
    model_count,
    parallel,
    registry_with_images,
    summarise_writes,
    table,
)

FIELD_MANAGER = "bench-write-floor"


def measure_floor(
    c: Cluster,
    shapes: list[Shape],
    *,
    n: int,
    threads: int,
    prefix: str = "floor",
    status_steps: int = 1,
    events: int = 0,
) -> dict[str, Any]:
    """Do the ten writes of each of ``n`` models; return seconds, writes, writes/s.

    ``status_steps`` > 1 applies the model's status that many times (each earlier step with
    another Ready message, so every apply is a real write); ``events`` creates that many core
    Events about the model. Together they replay the write set aimctrl makes under the SPEC
    (status per transition, an event per transition) without any controller logic.
    """
    client = c.client

    def event_body(model: str, uid: str, k: int) -> dict[str, Any]:
        return {
            "metadata": {"generateName": f"{model}.", "namespace": "default"},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": MODELS.kind,
                "name": model,
                "uid": uid,
            },
            "reason": f"Step{k}",
            "message": f"transition {k} of {model}",
            "type": "Normal",
            "count": 1,
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
        }

    def early_step(status: dict[str, Any], k: int) -> dict[str, Any]:
        conditions = [
            {**cond, "message": f"step {k}"} if cond.get("type") == "Ready" else cond
            for cond in status.get("conditions") or ()
        ]
        return {**status, "conditions": conditions}

    def status_body(resource: Any, name: str, status: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": resource.kind,
            "metadata": {"name": name},
            "status": status,
        }

    def one(i: int) -> None:
        name, status, templates = create_replica(client, shapes[i % len(shapes)], prefix, i)
        for k in range(1, status_steps):
            client.apply_status(
                MODELS,
                status_body(MODELS, name, early_step(status, k)),
                field_manager=FIELD_MANAGER,
            )
        client.apply_status(MODELS, status_body(MODELS, name, status), field_manager=FIELD_MANAGER)
        for k in range(events):
            client.create(CORE_EVENT, event_body(name, f"uid-{name}", k), namespace="default")
        for t in templates:
            t_status = t.pop("status", {})
            t.pop("apiVersion", None)
            t["metadata"]["labels"][SET_LABEL] = prefix
            t = {"apiVersion": API_VERSION, **t}
            client.apply(TEMPLATES, t, field_manager=FIELD_MANAGER)
            client.apply_status(
                TEMPLATES,
                status_body(TEMPLATES, t["metadata"]["name"], t_status),
                field_manager=FIELD_MANAGER,
            )

    before = c.metrics.requests()
    seconds = parallel(one, n, threads=threads)
    writes = c.metrics.writes(before, c.metrics.requests())
    total = sum(writes.values())
    return {
        "models": n,
        "threads": threads,
        "seconds": seconds,
        "writes": total,
        "writes_per_s": total / seconds,
        "by_verb": summarise_writes(writes),
    }


def main() -> None:
    parser = bench_parser(__doc__, models=1000)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    n = model_count(args)
    with contextlib.ExitStack() as stack:
        c = stack.enter_context(cluster(args.kubeconfig))
        images = stack.enter_context(registry_with_images(1))
        started = time.perf_counter()
        shapes = capture_shapes(c, images.refs)
        print(f"captured aimctrl's shapes in {time.perf_counter() - started:.1f} s", flush=True)
        delete_all(c)
        r = measure_floor(c, shapes, n=n, threads=args.threads)
        delete_all(c)
    print()
    print(
        table(
            ["what", "models", "threads", "writes", "seconds", "writes/s"],
            [
                [
                    "write floor",
                    r["models"],
                    r["threads"],
                    r["writes"],
                    r["seconds"],
                    r["writes_per_s"],
                ]
            ],
        )
    )
    print(f"\nwrites by verb: {r['by_verb']}")


if __name__ == "__main__":
    main()
