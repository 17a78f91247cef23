"""Registry faults from a :class:`~aimctrl.testing.faultproxy.FaultProxy` before the real registry.

Each model's image names the proxy (127.0.0.1, so plain HTTP) and its own repository, so that each
fault hits one model only; the manager runs the model controller with inline discovery. Final
faults (401, 403, 404, truncated or oversized config blob, garbage manifest) must give the
documented reason at once and are not retried (the proxy's request count stays put). Transient
faults (500, 503, responses slower than the registry client's 10 s timeout, hang-ups) are retried:
a few quick attempts per discovery round (the registry client's bounded backoff), then rounds 10 s,
then 20 s apart (the controller's backoff), the model Progressing meanwhile and never Failed; once
the fault is gone, the next round succeeds. Afterwards a healthy model still becomes Ready: no
worker thread died.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from aimctrl.manager import Manager
from aimctrl.testing.faultproxy import (
    Delay,
    FaultProxy,
    Garbage,
    HangUp,
    Oversize,
    RecordedRequest,
    Status,
    Truncate,
)
from aimctrl.testing.helpers import Kubectl, eventually
from aimctrl.testing.images import build_image, push_image

pytestmark = pytest.mark.integration

API = "aim.silogen.ai/v1alpha1"
LABELS = {
    "org.amd.silogen.model.canonicalName": "faults/registry",
    "org.amd.silogen.model.deployments": '[{"gpuModel": "MI300X", "gpuCount": 1}]',
}
REPOS = ("r401", "r403", "r404", "trunc", "big", "garbage", "r500", "r503", "slow", "hangup", "ok")
ATTEMPTS_PER_ROUND = 4  # registry.RetryPolicy.attempts
FIRST_RETRY_SECONDS = 10.0  # the model controller's backoff: 10 s, doubling


@pytest.fixture(scope="module")
def proxy(registries: Any) -> Iterator[FaultProxy]:
    upstream = registries.env.registry
    with httpx.Client(timeout=30) as client:
        image = build_image(LABELS)
        for repo in REPOS:
            push_image(client, f"http://{upstream}", f"faults/{repo}", "1", image)
    with FaultProxy(upstream) as p:
        yield p


@pytest.fixture
def manager(start_manager: Callable[..., Manager]) -> Manager:
    return start_manager(only=("model",), discovery_mode="inline", workers=2)


def _model(namespace: str, repo: str, proxy: FaultProxy) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "AIMModel",
        "metadata": {"name": repo, "namespace": namespace},
        "spec": {
            "image": f"{proxy.address}/faults/{repo}:1",
            "discovery": {"autoCreateTemplates": False},
        },
    }


def _extracted(kubectl: Kubectl, namespace: str, name: str) -> tuple[str, str, str, str]:
    """(model status, MetadataExtracted status, reason, message)."""
    obj = kubectl.json("get", "aimmodel", name, "-n", namespace)
    status = obj.get("status") or {}
    for c in status.get("conditions") or ():
        if c["type"] == "MetadataExtracted":
            return status.get("status", ""), c["status"], c["reason"], c.get("message", "")
    return status.get("status", ""), "", "", ""


def _wait(
    kubectl: Kubectl,
    namespace: str,
    name: str,
    want: Callable[[tuple[str, ...]], bool],
    *,
    t: float,
) -> tuple[str, ...]:
    try:
        return eventually(  # type: ignore[no-any-return]
            lambda: (got := _extracted(kubectl, namespace, name)) and want(got) and got,
            timeout=t,
            what=f"{name}",
        )
    except AssertionError as e:
        described = kubectl.run("describe", "aimmodel", name, "-n", namespace, check=False).stdout
        raise AssertionError(f"{e}\n{described}") from None


def _rounds(requests: list[RecordedRequest], *, gap: float = 5.0) -> list[list[float]]:
    """Request times grouped into discovery rounds (a pause longer than ``gap`` starts one)."""
    rounds: list[list[float]] = []
    for r in requests:
        if rounds and r.at - rounds[-1][-1] < gap:
            rounds[-1].append(r.at)
        else:
            rounds.append([r.at])
    return rounds


def test_final_registry_faults_give_their_reason_and_are_not_retried(
    kubectl: Kubectl, proxy: FaultProxy, manager: Manager, namespace: str
) -> None:
    expected = {
        "r401": (Status(401), "/manifests/", "ImagePullAuthFailure"),
        "r403": (Status(403), "/manifests/", "ImagePullAuthFailure"),
        "r404": (Status(404), "/manifests/", "ImageNotFound"),
        "trunc": (Truncate(keep=20), "/blobs/", "MetadataExtractionFailed"),
        "big": (Oversize(size=5 * 1024 * 1024), "/blobs/", "MetadataExtractionFailed"),
        "garbage": (Garbage(), "/manifests/", "MetadataExtractionFailed"),
    }
    rules = [
        proxy.add(fault, path=f"^/v2/faults/{repo}{part}")
        for repo, (fault, part, _) in expected.items()
    ]
    try:
        kubectl.apply([_model(namespace, repo, proxy) for repo in expected])
        seen = {}
        for repo, (_, _, reason) in expected.items():
            got = _wait(kubectl, namespace, repo, lambda g: g[1] == "False", t=60)
            assert got[:3] == ("Failed", "False", reason), (repo, got)
            seen[repo] = proxy.count(f"^/v2/faults/{repo}/")
            print(f"{repo}: {reason}: {got[3][:160]} ({seen[repo]} requests)")
        for repo, count in seen.items():
            # manifest, then config blob: a final fault stops discovery where it happens.
            assert 1 <= count <= 2, (repo, count)
        # Not retried: well past the first controller backoff, the counts have not moved.
        kubectl.apply(_model(namespace, "ok", proxy))
        _wait(kubectl, namespace, "ok", lambda g: g[0] == "Ready", t=30)
        time.sleep(FIRST_RETRY_SECONDS + 2)
        assert {repo: proxy.count(f"^/v2/faults/{repo}/") for repo in seen} == seen
    finally:
        for rule in rules:
            proxy.remove(rule)


@pytest.mark.slow
def test_transient_registry_faults_are_retried_with_bounded_backoff_then_recover(
    kubectl: Kubectl, proxy: FaultProxy, manager: Manager, namespace: str
) -> None:
    proxy.add(Status(500), path="^/v2/faults/r500/manifests/")
    r503 = proxy.add(Status(503), path="^/v2/faults/r503/manifests/")
    slow = proxy.add(Delay(12.0), path="^/v2/faults/slow/manifests/")
    proxy.add(HangUp(), path="^/v2/faults/hangup/manifests/", times=2)
    started = time.monotonic()
    kubectl.apply([_model(namespace, repo, proxy) for repo in ("r500", "r503", "slow", "hangup")])
    try:
        # Two hang-ups, then an answer: retried within one discovery round, Ready at once.
        _wait(kubectl, namespace, "hangup", lambda g: g[0] == "Ready", t=30)
        assert proxy.count("^/v2/faults/hangup/manifests/") == 3

        retrying = lambda g: g[:3] == ("Progressing", "Unknown", "DiscoveryRetrying")  # noqa: E731
        for repo in ("r500", "r503"):
            got = _wait(kubectl, namespace, repo, retrying, t=30)
            assert f"HTTP {repo[1:]}" in got[3], got
        # Let r503 go through two rounds, then heal it; r500 stays broken throughout.
        two_rounds = 2 * ATTEMPTS_PER_ROUND
        eventually(lambda: proxy.count("^/v2/faults/r503/") >= two_rounds, timeout=40)
        proxy.remove(r503)
        _wait(kubectl, namespace, "r503", lambda g: g[0] == "Ready", t=40)
        rounds = _rounds(proxy.requests("^/v2/faults/r503/manifests/"))
        print("r503 rounds (s from start):", [[round(t - started, 1) for t in r] for r in rounds])
        assert [len(r) for r in rounds[:2]] == [ATTEMPTS_PER_ROUND, ATTEMPTS_PER_ROUND], rounds
        assert len(rounds) == 3, rounds
        assert len(rounds[2]) == 1, rounds  # healed: one attempt suffices
        assert rounds[1][0] - rounds[0][-1] >= FIRST_RETRY_SECONDS - 0.5
        assert rounds[2][0] - rounds[1][-1] >= 2 * FIRST_RETRY_SECONDS - 0.5
        within = [b - a for r in rounds[:2] for a, b in itertools.pairwise(r)]
        assert all(0.1 <= d <= 5.0 for d in within), within  # backed off, briefly

        # Slower than the client's timeout: each attempt times out; the round gives up within
        # the registry client's 30 s budget, and the model waits, Progressing.
        got = _wait(kubectl, namespace, "slow", retrying, t=60)
        assert "timed out" in got[3], got
        slow_rounds = _rounds(proxy.requests("^/v2/faults/slow/manifests/"), gap=12.5)
        assert 1 <= len(slow_rounds[0]) <= ATTEMPTS_PER_ROUND, slow_rounds
        proxy.remove(slow)
        _wait(kubectl, namespace, "slow", lambda g: g[0] == "Ready", t=60)

        # r500: still retrying, never Failed, and the request count is bounded by the backoff.
        elapsed = time.monotonic() - started
        status = _extracted(kubectl, namespace, "r500")
        assert retrying(status), status
        bound, waited, delay = 1, FIRST_RETRY_SECONDS, FIRST_RETRY_SECONDS
        while waited < elapsed:
            bound, delay = bound + 1, delay * 2
            waited += delay
        count = proxy.count("^/v2/faults/r500/")
        print(f"r500: {count} requests in {elapsed:.0f}s (bound {bound * ATTEMPTS_PER_ROUND})")
        assert ATTEMPTS_PER_ROUND * 2 <= count <= bound * ATTEMPTS_PER_ROUND

        # No worker died: a fresh healthy model is discovered promptly.
        kubectl.apply(_model(namespace, "ok", proxy))
        _wait(kubectl, namespace, "ok", lambda g: g[0] == "Ready", t=30)
    finally:
        proxy.clear()
