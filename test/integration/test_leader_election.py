"""Two ``aimctrl run --leader-elect`` processes against the real apiserver.

Exactly one holds the Lease and runs workers (the standby's reconcile counters stay at zero);
SIGKILL the leader and the standby takes over once the Lease has expired, and starts reconciling.

The bound: a Lease is valid for its duration after its last renewal by definition, and (as in
client-go) the standby measures expiry on its own clock from when it last *saw* the record
change, and waits ``retry x (1 + 1.2 x rand)`` (up to 2.2 retry periods) between attempts. So the
takeover comes at most lease + 2 x 2.2 x retry after the kill: one wait for the standby to notice
the last renewal, one for its next attempt. With client-go's defaults (15 s, retry 2 s) that is
23.8 s: 15 s from the kill cannot be promised with a 15 s lease. With
``--leader-elect-lease-duration=8 --leader-elect-renew-deadline=6
--leader-elect-retry-period=1.5`` the bound is 8 + 6.6 = 14.6 s: a standby takes over within
15 s of the leader's death. The test prints the time from the kill and from the last renewal.
"""

from __future__ import annotations

import datetime as dt
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aimctrl.testing.controlplane import free_port
from aimctrl.testing.helpers import Kubectl, eventually

pytestmark = pytest.mark.integration

LEASE = "aimctrl-leader.aim.silogen.ai"
RETRY_SECONDS, JITTER = 2.0, 1.2  # client-go's retry period and jitter factor


def worst_takeover(lease: float, retry: float) -> float:
    """Lease + two waits of at most retry x (1 + jitter): see the module docstring."""
    return lease + 2 * retry * (1 + JITTER)


class ManagerProcess:
    def __init__(
        self,
        kubeconfig: str,
        namespace: str,
        log: Path,
        *,
        lease: float,
        renew: float,
        retry: float = RETRY_SECONDS,
    ) -> None:
        self.metrics = free_port()
        self.probes = free_port()
        self.log = log
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aimctrl",
                "run",
                f"--kubeconfig={kubeconfig}",
                "--leader-elect",
                f"--leader-elect-lease-duration={lease}",
                f"--leader-elect-renew-deadline={renew}",
                f"--leader-elect-retry-period={retry}",
                f"--operator-namespace={namespace}",
                f"--metrics-bind-address=127.0.0.1:{self.metrics}",
                f"--health-probe-bind-address=127.0.0.1:{self.probes}",
                "--discovery-mode=inline",
                "--log-format=json",
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def reconciles(self) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith("controller_runtime_reconcile_total{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def ready(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.probes}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def election_namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"le-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def _holder(kubectl: Kubectl, namespace: str) -> str:
    res = kubectl.run(
        "get", "lease", LEASE, "-n", namespace, "-o", "jsonpath={.spec.holderIdentity}", check=False
    )
    return res.stdout.strip() if res.returncode == 0 else ""


def _identity_of(log: Path) -> str | None:
    m = re.search(r'"identity": ?"([^"]+)"', log.read_text(errors="replace"))
    return m.group(1) if m else None


@pytest.mark.parametrize(
    ("lease", "renew", "retry", "promised"),
    [
        (15.0, 10.0, 2.0, worst_takeover(15.0, 2.0)),  # client-go's defaults: 23.8 s
        (8.0, 6.0, 1.5, 15.0),  # the bound is 14.6 s: within 15 s of the kill
    ],
    ids=["default-lease", "lease-8s"],
)
def test_one_leader_reconciles_and_standby_takes_over_after_sigkill(
    kubeconfig_path: str,
    kubectl: Kubectl,
    crds_installed: None,
    election_namespace: str,
    tmp_path: Path,
    lease: float,
    renew: float,
    retry: float,
    promised: float,
) -> None:
    assert worst_takeover(lease, retry) <= promised
    a = ManagerProcess(
        kubeconfig_path,
        election_namespace,
        tmp_path / "a.log",
        lease=lease,
        renew=renew,
        retry=retry,
    )
    eventually(lambda: _holder(kubectl, election_namespace), timeout=30, what="first leader")
    b = ManagerProcess(
        kubeconfig_path,
        election_namespace,
        tmp_path / "b.log",
        lease=lease,
        renew=renew,
        retry=retry,
    )
    procs = {"a": a, "b": b}
    try:
        eventually(lambda: a.ready() and b.ready(), timeout=60, what="both caches synced")
        # Give the standby several retry periods to (wrongly) grab the lease or reconcile.
        kubectl.apply(
            {
                "apiVersion": "aim.silogen.ai/v1alpha1",
                "kind": "AIMModel",
                "metadata": {"name": "le-model", "namespace": election_namespace},
                "spec": {"image": "127.0.0.1:1/none:1", "discovery": {"enabled": False}},
            }
        )
        time.sleep(6)
        holder = _holder(kubectl, election_namespace)
        assert holder == _identity_of(a.log), (holder, a.log.read_text()[-2000:])
        assert b.reconciles() == 0, "the standby must not reconcile"
        if a.reconciles() == 0:
            pytest.fail("the leader did not reconcile anything:\n" + a.log.read_text()[-3000:])

        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(timeout=10)
        killed = time.monotonic()
        renew = kubectl(
            "get", "lease", LEASE, "-n", election_namespace, "-o", "jsonpath={.spec.renewTime}"
        )
        since_renew = (
            dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(renew.replace("Z", "+00:00"))
        ).total_seconds()
        eventually(
            lambda: _holder(kubectl, election_namespace) == _identity_of(b.log),
            timeout=30,
            interval=0.2,
            what="standby holds the lease",
        )
        took = time.monotonic() - killed
        print(f"takeover: {took:.1f}s after SIGKILL, {took + since_renew:.1f}s after last renewal")
        assert took <= promised, f"takeover took {took:.1f}s (promised {promised:.1f}s)"
        kubectl("annotate", "aimmodel", "le-model", "-n", election_namespace, "touch=1")
        eventually(lambda: b.reconciles() > 0, timeout=30, what="new leader reconciles")
    finally:
        for p in procs.values():
            p.stop()
    assert b.proc.returncode == 0, (tmp_path / "b.log").read_text()[-2000:]
    assert "lease" in (tmp_path / "b.log").read_text().lower()


def test_a_leader_whose_lease_is_taken_exits_with_code_1(
    kubeconfig_path: str,
    kubectl: Kubectl,
    crds_installed: None,
    election_namespace: str,
    tmp_path: Path,
) -> None:
    """Another holder writes the Lease (as after a network partition in which a standby took
    over): the leader cannot renew within its renew deadline and the process exits with 1, so
    the kubelet restarts it as a standby instead of two replicas reconciling at once."""
    lease, renew = 10.0, 7.0
    a = ManagerProcess(
        kubeconfig_path, election_namespace, tmp_path / "a.log", lease=lease, renew=renew
    )
    try:
        eventually(lambda: _holder(kubectl, election_namespace), timeout=30, what="first leader")
        assert _holder(kubectl, election_namespace) == _identity_of(a.log)
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        kubectl(
            "patch",
            "lease",
            LEASE,
            "-n",
            election_namespace,
            "--type=merge",
            "-p",
            '{"spec": {"holderIdentity": "intruder", "leaseDurationSeconds": 3600, '
            f'"acquireTime": "{now}", "renewTime": "{now}"}}}}',
        )
        taken = time.monotonic()
        code = a.proc.wait(timeout=renew + 2 * RETRY_SECONDS * (1 + JITTER) + 15)
        took = time.monotonic() - taken
        print(f"leader exited {took:.1f}s after losing the Lease")
    finally:
        a.stop()
    log = (tmp_path / "a.log").read_text()
    assert code == 1, log[-2000:]
    assert "leader election lost" in log
    assert _holder(kubectl, election_namespace) == "intruder"  # it did not take the Lease back
