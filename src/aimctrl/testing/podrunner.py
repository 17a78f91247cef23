"""The test harness's discovery-pod runner: the kubelet's part for discovery pods, and only that.

Nothing on these machines runs containers, and KWOK (which plays the kubelet for every other pod)
is configured to leave pods labelled :data:`~aimctrl.testing.controlplane.DISCOVERY_POD_LABEL`
alone. This runner takes those pods once the real scheduler has bound them and does what a kubelet
would: it runs the pod's command — the real ``aimctrl discover`` of this checkout, in a child
process of this Python — with the container's arguments and environment, with every Secret volume
the container mounts written to a temporary directory (paths in the arguments are rewritten to it,
as a mount would place them), and with the termination-message file mapped the same way. When the
process exits it writes the container's terminated state (exit code, reason, and the termination
message truncated to the kubelet's 4096 bytes) and the pod phase through the ``pods/status``
subresource, so that the real Job controller completes or fails the Job.

What it does not emulate: images (the command always runs from this checkout), resource limits,
the service-account token (discovery pods set ``automountServiceAccountToken: false``), and
``kubectl logs`` (the output is kept in the runner's log directory, one file per pod).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from kubernetes import client, config

from aimctrl.testing.controlplane import DISCOVERY_POD_LABEL

__all__ = ["KUBELET_MESSAGE_LIMIT", "DiscoveryPodRunner", "main"]

#: The kubelet keeps at most this many bytes of a container's termination message.
KUBELET_MESSAGE_LIMIT = 4096
_DEFAULT_MESSAGE_PATH = "/dev/termination-log"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class DiscoveryPodRunner:
    """Watches bound discovery pods in all namespaces and runs each once."""

    def __init__(self, kubeconfig: str, *, log_dir: Path | None = None) -> None:
        self._api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        self._core = client.CoreV1Api(self._api)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._done: set[str] = set()
        self._lock = threading.Lock()
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="aimctrl-podrunner-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.runs = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> DiscoveryPodRunner:
        self._thread = threading.Thread(target=self._loop, name="discovery-pod-runner", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> DiscoveryPodRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ loop
    def _loop(self) -> None:
        # Polling a label-selected list keeps the runner simple and immune to watch expiry;
        # discovery pods are few, and 0.2 s is far below a Job's own latency.
        while not self._stop.is_set():
            try:
                pods = self._core.list_pod_for_all_namespaces(
                    label_selector=DISCOVERY_POD_LABEL, _preload_content=False
                )
                for pod in json.loads(pods.data)["items"]:  # type: ignore[attr-defined]
                    self._maybe_run(pod)
            except Exception as e:  # noqa: BLE001 - the runner must outlive apiserver restarts
                (self.log_dir / "runner-errors.log").open("a").write(f"{_now()} {e!r}\n")
            self._stop.wait(0.2)

    def _maybe_run(self, pod: dict[str, Any]) -> None:
        meta, spec, status = pod["metadata"], pod["spec"], pod.get("status", {})
        if not spec.get("nodeName") or meta.get("deletionTimestamp"):
            return
        if status.get("phase") in ("Succeeded", "Failed"):
            return
        uid = meta["uid"]
        with self._lock:
            if uid in self._done:
                return
            self._done.add(uid)
        threading.Thread(target=self._run, args=(pod,), daemon=True).start()

    # ------------------------------------------------------------------ one pod
    def _secret_files(self, namespace: str, secret_name: str, target: Path) -> None:
        raw: Any = self._core.read_namespaced_secret(secret_name, namespace, _preload_content=False)
        secret = json.loads(raw.data)
        target.mkdir(parents=True, exist_ok=True)
        for key, value in (secret.get("data") or {}).items():
            (target / key).write_bytes(base64.b64decode(value))

    def _run(self, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        ns, name = meta["namespace"], meta["name"]
        container = spec["containers"][0]
        work = Path(tempfile.mkdtemp(prefix=f"pod-{name}-", dir=self.log_dir))
        started = _now()
        # Mount emulation: the container's view of the filesystem lives under <work>/fs; each
        # secret volume is written at its mountPath there, and absolute paths in the arguments
        # that name a mount, a directory holding mounts, or the termination-message file are
        # rewritten into that tree.
        root = work / "fs"
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        message = ""
        exit_code = 1
        try:
            paths: set[str] = set()
            for mount in container.get("volumeMounts") or []:
                vol = volumes.get(mount["name"], {})
                if "secret" in vol:
                    path = mount["mountPath"].rstrip("/")
                    self._secret_files(ns, vol["secret"]["secretName"], root / path.lstrip("/"))
                    paths.add(path)
                    paths.update(_ancestors(path))
            message_path = container.get("terminationMessagePath") or _DEFAULT_MESSAGE_PATH
            local_message = root / message_path.lstrip("/")
            local_message.parent.mkdir(parents=True, exist_ok=True)
            paths.add(message_path)
            argv = [*container.get("command", []), *container.get("args", [])]
            argv = [_remap(a, paths, root) for a in argv]
            if argv and Path(argv[0]).name == "aimctrl":
                argv = [sys.executable, "-m", "aimctrl", *argv[1:]]
            if "--termination-message-path" not in " ".join(argv):
                argv.append(f"--termination-message-path={local_message}")
            env = {**os.environ}
            for item in container.get("env") or []:
                if "value" in item:
                    env[item["name"]] = _remap(item["value"], paths, root)
            log = (self.log_dir / f"{ns}_{name}.log").open("wb")
            proc = subprocess.run(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=300, check=False
            )
            exit_code = proc.returncode
            if local_message.exists():
                message = local_message.read_bytes()[:KUBELET_MESSAGE_LIMIT].decode(
                    "utf-8", errors="replace"
                )
        except Exception as e:  # noqa: BLE001 - reported in the pod like a kubelet would
            message = f"pod runner: {e!r}"[:KUBELET_MESSAGE_LIMIT]
        self.runs += 1
        self._finish(pod, exit_code=exit_code, message=message, started=started)

    def _finish(self, pod: dict[str, Any], *, exit_code: int, message: str, started: str) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        container = spec["containers"][0]
        finished = _now()
        phase = "Succeeded" if exit_code == 0 else "Failed"
        body = {
            "status": {
                "phase": phase,
                "startTime": started,
                "hostIP": "127.0.0.1",
                "podIP": "127.0.0.1",
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": started},
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "PodCompleted",
                        "lastTransitionTime": finished,
                    },
                    {
                        "type": "ContainersReady",
                        "status": "False",
                        "reason": "PodCompleted",
                        "lastTransitionTime": finished,
                    },
                ],
                "containerStatuses": [
                    {
                        "name": container["name"],
                        "image": container.get("image", ""),
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "started": False,
                        "state": {
                            "terminated": {
                                "exitCode": exit_code,
                                "reason": "Completed" if exit_code == 0 else "Error",
                                "message": message,
                                "startedAt": started,
                                "finishedAt": finished,
                            }
                        },
                    }
                ],
            }
        }
        self._core.patch_namespaced_pod_status(
            meta["name"],
            meta["namespace"],
            body,
            _content_type="application/strategic-merge-patch+json",
        )


def _ancestors(path: str) -> list[str]:
    """Directories above ``path`` at least three levels deep (never /, /var or /var/run)."""
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:i]) for i in range(3, len(parts))]


def _remap(value: str, paths: set[str], root: Path) -> str:
    """Prefix every occurrence of a known absolute path with ``root``, in one pass."""
    if not paths:
        return value
    alternatives = "|".join(re.escape(p) for p in sorted(paths, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w/.-])({alternatives})(?=$|[/=:,\s])")
    return pattern.sub(lambda m: f"{root}{m.group(1)}", value)


def main(argv: list[str] | None = None) -> int:
    """``python -m aimctrl.testing.podrunner KUBECONFIG LOGDIR``: run until terminated."""
    args = argv if argv is not None else sys.argv[1:]
    runner = DiscoveryPodRunner(args[0], log_dir=Path(args[1]) if len(args) > 1 else None)
    runner.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    runner.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
