"""Helpers for tests that drive real components: kubectl and polling with a deadline."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

from aimctrl.testing.controlplane import kubectl_bin

__all__ = ["Kubectl", "eventually"]


class Kubectl:
    """Runs the real kubectl against the test control plane."""

    def __init__(self, kubeconfig: str) -> None:
        self.kubeconfig = kubeconfig

    def run(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [kubectl_bin(), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({res.returncode}): {res.stderr}"
            )
        return res

    def __call__(self, *args: str, input: str | None = None) -> str:
        return self.run(*args, input=input).stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def apply(self, obj: dict[str, Any] | list[dict[str, Any]]) -> str:
        docs = obj if isinstance(obj, list) else [obj]
        return self("apply", "-f", "-", input="\n---\n".join(json.dumps(d) for d in docs))


def eventually(
    check: Callable[[], Any], *, timeout: float = 60.0, interval: float = 0.2, what: str = ""
) -> Any:
    """Poll ``check`` until it returns a truthy value; fail with the last value or error."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except AssertionError as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}: last={last!r}")
