"""Informer initial sync: objects per second and RSS per cached object, ours beside the official
client's ``kubernetes.informer.SharedInformer`` in one run, against a real apiserver.

The driver creates ``--objects`` small ConfigMaps (one 64-byte data key, two labels) in a scratch
namespace, then runs each variant in a fresh subprocess so that their memory does not mix:

* ``ours``: ``SharedInformer`` over ``KubeClient.list_watcher`` (consistent list at RV "" in
  pages, dict cache without managedFields). "sync" is the handler-level sync: every
  initial-list object has been delivered to a counting handler.
* ``official``: ``kubernetes.informer.SharedInformer(CoreV1Api.list_namespaced_config_map)``
  (one unpaged list decoded into pydantic models); "sync" is when its ADDED handler has counted
  every object.

RSS per object = (RSS after sync and a full GC - RSS just before the informer starts) / objects.

    .venv/bin/python bench/bench_informer.py --kubeconfig .dev/kubeconfig [--objects 10000]
        [--namespace aimctrl-bench] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aimctrl.kube.client import KubeClient
from aimctrl.kube.errors import AlreadyExists, NotFound
from aimctrl.kube.resources import CONFIG_MAP, NAMESPACE
from aimctrl.machinery.informer import SharedInformer
from aimctrl.machinery.store import DeletedFinalStateUnknown, Object

SYNC_TIMEOUT = 900.0


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# -- seeding --------------------------------------------------------------------------------------


def seed(client: KubeClient, namespace: str, n: int) -> float:
    with contextlib.suppress(AlreadyExists):
        client.create(NAMESPACE, {"metadata": {"name": namespace}})
    existing = {
        o["metadata"]["name"] for o in client.list(CONFIG_MAP, namespace=namespace)["items"]
    }
    todo = [f"cm-{i:06d}" for i in range(n) if f"cm-{i:06d}" not in existing]

    def create(name: str) -> None:
        body = {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/part-of": "aimctrl-bench", "shard": name[-1]},
            },
            "data": {"payload": "x" * 64},
        }
        with contextlib.suppress(AlreadyExists):
            client.create(CONFIG_MAP, body, namespace=namespace)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(create, todo))
    elapsed = time.perf_counter() - start
    return len(todo) / elapsed if todo else 0.0


# -- variants (run in a subprocess each) ----------------------------------------------------------


class Counter:
    def __init__(self, target: int) -> None:
        self.count = 0
        self.target = target
        self.done = threading.Event()

    def on_add(self, obj: Object, is_initial_list: bool) -> None:
        self.count += 1
        if self.count >= self.target:
            self.done.set()

    def on_update(self, old: Object, new: Object) -> None:
        pass

    def on_delete(self, obj: Object | DeletedFinalStateUnknown) -> None:
        pass


def run_ours(kubeconfig: str, namespace: str, n: int) -> dict[str, Any]:
    client = KubeClient.from_kubeconfig(kubeconfig)
    informer = SharedInformer(client.list_watcher(CONFIG_MAP, namespace), name="bench")
    counter = Counter(n)
    reg = informer.add_event_handler(counter)
    stop = threading.Event()
    gc.collect()
    rss0 = rss_bytes()
    start = time.perf_counter()
    thread = informer.start(stop)
    store_synced_at = None
    deadline = start + SYNC_TIMEOUT
    while not reg.has_synced() and time.perf_counter() < deadline:
        if store_synced_at is None and informer.has_synced():
            store_synced_at = time.perf_counter() - start
        counter.done.wait(0.005)
    elapsed = time.perf_counter() - start
    gc.collect()
    rss1 = rss_bytes()
    cached = len(informer.indexer)
    stop.set()
    thread.join(10)
    return {
        "variant": "ours",
        "objects": cached,
        "delivered": counter.count,
        "store_sync_s": store_synced_at,
        "sync_s": elapsed,
        "objects_per_s": cached / elapsed,
        "rss_per_object_b": (rss1 - rss0) / max(cached, 1),
    }


def run_official(kubeconfig: str, namespace: str, n: int) -> dict[str, Any]:
    # The official client is untyped; this function is the comparison baseline only.
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    from kubernetes.informer import ADDED
    from kubernetes.informer import SharedInformer as OfficialInformer

    api = k8s_config.new_client_from_config(config_file=kubeconfig, persist_config=False)  # type: ignore[no-untyped-call]
    core = k8s.CoreV1Api(api)
    informer = OfficialInformer(list_func=core.list_namespaced_config_map, namespace=namespace)  # type: ignore[no-untyped-call]
    counter = Counter(n)
    informer.add_event_handler(ADDED, lambda obj: counter.on_add(obj, True))  # type: ignore[no-untyped-call]
    gc.collect()
    rss0 = rss_bytes()
    start = time.perf_counter()
    informer.start()  # type: ignore[no-untyped-call]
    counter.done.wait(SYNC_TIMEOUT)
    elapsed = time.perf_counter() - start
    gc.collect()
    rss1 = rss_bytes()
    cached = len(informer.cache.list_keys())
    stop_thread = threading.Thread(target=informer.stop, daemon=True)
    stop_thread.start()
    stop_thread.join(5)  # its watch has no timeout; do not wait on it
    return {
        "variant": "official",
        "objects": cached,
        "delivered": counter.count,
        "store_sync_s": None,
        "sync_s": elapsed,
        "objects_per_s": cached / elapsed,
        "rss_per_object_b": (rss1 - rss0) / max(cached, 1),
    }


VARIANTS = {"ours": run_ours, "official": run_official}


# -- driver ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--kubeconfig", help="cluster to use (default: start a local apiserver + etcd for the run)"
    )
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--namespace", default="aimctrl-bench")
    parser.add_argument("--keep", action="store_true", help="keep the scratch namespace")
    parser.add_argument("--variant", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.variant:
        result = VARIANTS[args.variant](args.kubeconfig, args.namespace, args.objects)
        print(json.dumps(result))
        return

    with contextlib.ExitStack() as stack:
        if not args.kubeconfig:
            from aimctrl.testing.controlplane import ControlPlane

            plane = stack.enter_context(ControlPlane(with_controllers=False))
            args.kubeconfig = str(plane.kubeconfig)
        run(args)


def run(args: argparse.Namespace) -> None:
    client = KubeClient.from_kubeconfig(args.kubeconfig)
    create_rate = seed(client, args.namespace, args.objects)
    print(f"seeded {args.objects} ConfigMaps in {args.namespace} ({create_rate:.0f} creates/s)")
    rows = []
    try:
        for variant in ("ours", "official"):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--variant",
                    variant,
                    "--kubeconfig",
                    args.kubeconfig,
                    "--namespace",
                    args.namespace,
                    "--objects",
                    str(args.objects),
                ],
                check=True,
                capture_output=True,
                text=True,
                timeout=SYNC_TIMEOUT + 60,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        if not args.keep:
            with contextlib.suppress(NotFound):
                client.delete(NAMESPACE, args.namespace)

    print(f"\n{'variant':<10} {'objects':>8} {'sync s':>8} {'objects/s':>10} {'RSS B/obj':>10}")
    for r in rows:
        print(
            f"{r['variant']:<10} {r['objects']:>8} {r['sync_s']:>8.2f} "
            f"{r['objects_per_s']:>10.0f} {r['rss_per_object_b']:>10.0f}"
        )
    by = {r["variant"]: r for r in rows}
    if "ours" in by and "official" in by:
        speed = by["ours"]["objects_per_s"] / by["official"]["objects_per_s"]
        memory = by["ours"]["rss_per_object_b"] / by["official"]["rss_per_object_b"]
        print(f"\nratio ours/official: sync speed {speed:.2f}x, RSS per object {memory:.2f}x")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
