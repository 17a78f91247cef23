"""GPU fleet at scale: Node informer memory per node, and how much one node label change costs.

A fresh apiserver + etcd (no controller-manager, no KWOK: nothing changes the nodes) holds
``--nodes`` Node objects created with a Ready status and labelled as AMD's node labeller labels
them (aimctrl.testing.fleet; 60% MI300X, 25% MI325X in the ``beta.`` form, 15% MI210 with
count-encoded labels), and ``--templates`` AIMClusterServiceTemplates over ten models with
discovery off (40% MI300X, 30% MI325X, 20% MI210, 10% MI355X: the last NotAvailable).

Measured, against baselines from the same run:

1. Informer memory per node: the RSS growth of a subprocess holding a Node informer with
   aimctrl's compact Node transform, beside the same informer keeping whole nodes (managedFields
   dropped), and the nodes' listed JSON size.
2. The manager (every controller) converges; then one MI300X node is relabelled as MI355X.
   Reported: seconds until every MI355X template is Ready, and the template reconciles that
   one change caused, against the number of MI355X templates (the
   only ones whose status can change). Relabelling an MI300X node leaves MI300X with the same
   largest node, so the MI300X templates should not be reconciled at all.

    .venv/bin/python bench/bench_fleet.py [--nodes 5000] [--templates 1000]

Writes bench/results/fleet.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aimctrl.api.v1alpha1.model import AIMClusterModel
from aimctrl.api.v1alpha1.template import AIMClusterServiceTemplate
from aimctrl.controllers.context import resource_of
from aimctrl.kube.client import KubeClient
from aimctrl.kube.resources import NODE
from aimctrl.testing.fleet import amd_node
from common import ManagerProcess, cluster, mib, table  # type: ignore[import-not-found]

RESULTS = Path(__file__).parent / "results" / "fleet.md"
MODELS = 10
TEMPLATE_MIX = (("MI300X", 0.4), ("MI325X", 0.3), ("MI210", 0.2), ("MI355X", 0.1))


def node_for(i: int) -> dict[str, Any]:
    if i % 20 < 12:
        return amd_node(f"n-mi300x-{i:05d}", "MI300X")
    if i % 20 < 17:
        return amd_node(f"n-mi325x-{i:05d}", "MI325X", form="beta")
    return amd_node(f"n-mi210-{i:05d}", "MI210", form="count", gpus=4)


def template_gpu(i: int, total: int) -> str:
    edge = 0.0
    for gpu, share in TEMPLATE_MIX:
        edge += share
        if i < edge * total:
            return gpu
    return TEMPLATE_MIX[-1][0]


def create_all(client: KubeClient, bodies: list[tuple[Any, dict[str, Any]]]) -> float:
    start = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda rb: client.create(rb[0], rb[1]), bodies))
    return time.monotonic() - start


# -- informer memory, in a subprocess -----------------------------------------------------------

_CHILD = r"""
import gc, json, sys, threading
from aimctrl.kube.client import KubeClient
from aimctrl.kube.resources import NODE
from aimctrl.machinery.informer import SharedInformer
from aimctrl.machinery.store import compact
from aimctrl.controllers.context import transform_for

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

client = KubeClient.from_kubeconfig(sys.argv[1])
transform = transform_for(NODE) if sys.argv[2] == "compact" else compact
gc.collect(); before = rss()
inf = SharedInformer(client.list_watcher(NODE), transform=transform)
stop = threading.Event()
inf.start(stop)
while not inf.has_synced():
    stop.wait(0.05)
gc.collect()
print(json.dumps({"objects": len(inf.indexer), "rss": rss() - before}))
stop.set()
"""


def informer_rss(kubeconfig: str, mode: str) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, kubeconfig, mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


# -- the label change ---------------------------------------------------------------------------


def template_states(client: KubeClient) -> dict[str, str]:
    items = client.list(resource_of(AIMClusterServiceTemplate.RESOURCE))["items"]
    return {t["metadata"]["name"]: (t.get("status") or {}).get("status", "") for t in items}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--templates", type=int, default=1000)
    args = parser.parse_args()
    rows: list[list[object]] = []
    with cluster(None) as c:
        nodes = [node_for(i) for i in range(args.nodes)]
        took = create_all(c.client, [(NODE, n) for n in nodes])
        print(f"{args.nodes} nodes created in {took:.1f} s", flush=True)
        listed = json.dumps(c.client.list(NODE)["items"]).encode()
        per_json = len(listed) / args.nodes

        compact_rss = informer_rss(c.kubeconfig, "compact")
        whole_rss = informer_rss(c.kubeconfig, "whole")
        per_compact = compact_rss["rss"] / compact_rss["objects"]
        per_whole = whole_rss["rss"] / whole_rss["objects"]
        rows.append(["node JSON as listed (baseline)", f"{per_json:.0f} B", "1.00"])
        rows.append(["informer, whole node", f"{per_whole:.0f} B", f"{per_whole / per_json:.2f}"])
        rows.append(
            [
                "informer, aimctrl's Node cache",
                f"{per_compact:.0f} B",
                f"{per_compact / per_json:.2f}",
            ]
        )

        models = [
            (
                resource_of(AIMClusterModel.RESOURCE),
                {
                    "apiVersion": "aim.silogen.ai/v1alpha1",
                    "kind": "AIMClusterModel",
                    "metadata": {"name": f"fleet-m{m}"},
                    "spec": {
                        "image": f"registry.invalid/fleet/m{m}:1",
                        "discovery": {"enabled": False},
                    },
                },
            )
            for m in range(MODELS)
        ]
        create_all(c.client, models)
        templates = []
        for i in range(args.templates):
            gpu = template_gpu(i, args.templates)
            templates.append(
                (
                    resource_of(AIMClusterServiceTemplate.RESOURCE),
                    {
                        "apiVersion": "aim.silogen.ai/v1alpha1",
                        "kind": "AIMClusterServiceTemplate",
                        "metadata": {"name": f"fleet-t{i:05d}-{gpu.lower()}"},
                        "spec": {
                            "modelName": f"fleet-m{i % MODELS}",
                            "gpuSelector": {"model": gpu, "count": 1},
                        },
                    },
                )
            )
        create_all(c.client, templates)
        mi355x = sum(
            1 for i in range(args.templates) if template_gpu(i, args.templates) == "MI355X"
        )

        with ManagerProcess(c.kubeconfig, c.workdir, workers=4) as mgr:
            mgr.wait_ready()
            deadline = time.monotonic() + 600
            while True:
                states = template_states(c.client)
                ready = sum(1 for s in states.values() if s == "Ready")
                na = sum(1 for s in states.values() if s == "NotAvailable")
                if ready + na == args.templates and na == mi355x:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"not converged: {ready} Ready, {na} NotAvailable")
                mgr.check_alive()
                time.sleep(0.5)
            time.sleep(2)  # let debounced and in-flight work finish before the baseline counts
            before = mgr.metrics()
            reconciles0 = before.get(
                'controller_runtime_reconcile_total{controller="template",result="success"}', 0
            )
            target = next(n for n in nodes if n["metadata"]["name"].startswith("n-mi300x-"))
            name = target["metadata"]["name"]
            patch = {
                "metadata": {
                    "labels": {
                        "amd.com/gpu.device-id": "75a3",
                        "amd.com/gpu.product-name": "AMD_Instinct_MI355X_OAM",
                    }
                }
            }
            start = time.monotonic()
            c.client.patch(NODE, name, patch)
            while True:
                states = template_states(c.client)
                if all(s == "Ready" for s in states.values()):
                    break
                if time.monotonic() - start > 120:
                    raise TimeoutError("MI355X templates did not become Ready")
                time.sleep(0.05)
            settled = time.monotonic() - start
            time.sleep(3)
            after = mgr.metrics()
            reconciles = (
                after.get(
                    'controller_runtime_reconcile_total{controller="template",result="success"}', 0
                )
                - reconciles0
            )
            rss = mgr.rss()
        rows.append(["manager RSS, converged", f"{mib(rss):.0f} MiB", "-"])
        rows.append(
            [
                "one node relabelled MI300X -> MI355X: all templates settled",
                f"{settled:.2f} s",
                "-",
            ]
        )
        rows.append(
            [
                f"template reconciles it caused (templates: {args.templates}, MI355X: {mi355x})",
                f"{reconciles:.0f}",
                f"{reconciles / mi355x:.2f} per MI355X template",
            ]
        )
    gc.collect()
    text = (
        f"# GPU fleet: {args.nodes} nodes, {args.templates} templates\n\n"
        + table(["measure", "value", "ratio"], rows)
        + "\n"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
