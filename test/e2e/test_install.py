"""Installing aimctrl: CRDs, RBAC (enough and not more), probes, metrics and a Prometheus scrape."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest
import yaml

from aimctrl.testing.controlplane import free_port
from aimctrl.testing.helpers import eventually

from .conftest import OPERATOR_NAMESPACE, ROOT, SA_USER, SERVICE_ACCOUNT, Installation

CRD_FILES = sorted((ROOT / "config" / "crd" / "bases").glob("*.yaml"))


def _crd_names() -> list[str]:
    return [yaml.safe_load(p.read_text())["metadata"]["name"] for p in CRD_FILES]


def test_crds_are_established_and_kubectl_get_aim_lists_them(installation: Installation) -> None:
    k = installation.kubectl
    for name in _crd_names():
        crd = k.json("get", "crd", name)
        established = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert established.get("Established") == "True", name
        assert "aim" in crd["spec"]["names"]["categories"], name
    # Category discovery follows a moment after Established.
    eventually(
        lambda: k.run("get", "aim", "-A", check=False).returncode == 0,
        timeout=30,
        what="kubectl get aim -A",
    )
    # `kubectl explain` works because every field carries a description.
    assert "image" in k("explain", "aimclustermodel.spec")


def test_rbac_objects_of_config_rbac_exist(installation: Installation) -> None:
    k = installation.kubectl
    k("get", "serviceaccount", SERVICE_ACCOUNT, "-n", OPERATOR_NAMESPACE)
    role = k.json("get", "clusterrole", "aimctrl-manager-role")
    generated = yaml.safe_load((ROOT / "config" / "rbac" / "role.yaml").read_text())
    assert role["rules"] == generated["rules"]
    binding = k.json("get", "clusterrolebinding", "aimctrl-manager-rolebinding")
    assert binding["subjects"][0]["name"] == SERVICE_ACCOUNT
    k("get", "role", "aimctrl-leader-election-role", "-n", OPERATOR_NAMESPACE)
    k("get", "rolebinding", "aimctrl-leader-election-rolebinding", "-n", OPERATOR_NAMESPACE)
    for name in ("aimctrl-aim-admin", "aimctrl-aim-editor", "aimctrl-aim-viewer"):
        k("get", "clusterrole", name)


def test_probes_answer_200_once_caches_are_synced(installation: Installation) -> None:
    for path in ("/healthz", "/readyz"):
        response = httpx.get(installation.probe_url + path, timeout=5)
        assert response.status_code == 200, (path, response.text)


def _can_i_list(installation: Installation, namespace: str) -> list[tuple[str, list[str]]]:
    """(resource, verbs) rows of `kubectl auth can-i --list` for the manager's account."""
    out = installation.kubectl(
        "auth", "can-i", "--list", f"--as={SA_USER}", "-n", namespace, "--no-headers"
    )
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("/"):
            continue  # non-resource URLs (/api, /healthz...) of system:discovery
        verbs = line[line.rindex("[") + 1 : line.rindex("]")].split()
        rows.append((parts[0], verbs))
    return rows


@pytest.mark.parametrize("namespace", ["default", OPERATOR_NAMESPACE])
def test_the_role_allows_no_wildcards_and_never_writes_secrets(
    installation: Installation, namespace: str
) -> None:
    rows = _can_i_list(installation, namespace)
    assert rows, "can-i --list returned nothing"
    listing = "\n".join(f"{r} {v}" for r, v in rows)
    for resource, verbs in rows:
        assert resource not in ("*", "*.*"), listing
        assert "*" not in verbs, listing
        if resource.split(".")[0] in ("secrets", "secrets/status"):
            assert set(verbs) <= {"get", "list", "watch"}, listing
    k = installation.kubectl
    for verb in ("create", "update", "patch", "delete"):
        answer = k.run(
            "auth", "can-i", verb, "secrets", f"--as={SA_USER}", "-n", namespace, check=False
        )
        assert answer.stdout.strip() == "no", (verb, answer.stdout, answer.stderr)
    # Not more: nothing about the cluster's own machinery.
    for verb, resource in (("create", "clusterrolebindings"), ("delete", "nodes")):
        answer = k.run("auth", "can-i", verb, resource, f"--as={SA_USER}", check=False)
        assert answer.stdout.strip() == "no", (verb, resource)


def test_metrics_pass_promtool_and_carry_controller_runtime_series(
    installation: Installation,
) -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool (Debian prometheus) is needed")
    text = httpx.get(installation.metrics_url, timeout=5).text
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    controllers = {
        line.split('controller="', 1)[1].split('"', 1)[0]
        for line in text.splitlines()
        if line.startswith("controller_runtime_reconcile_total{")
    }
    # One reconciler per concern: model discovery, template generation, service resolution.
    for concern in ("model", "template", "service"):
        assert any(concern in c for c in controllers), (concern, controllers)
    for name in ("workqueue_depth", "workqueue_adds_total", "controller_runtime_active_workers"):
        assert f"\n{name}{{" in text, name


def test_manager_log_shows_no_forbidden_request(installation: Installation) -> None:
    log = installation.manager_log()
    forbidden = [line for line in log.splitlines() if "forbidden" in line.lower()]
    assert forbidden == [], "\n".join(forbidden[:20])


def test_prometheus_scrapes_the_manager_and_answers_promql(installation: Installation) -> None:
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus (Debian package) is needed")
    target = installation.metrics_url.removeprefix("http://").removesuffix("/metrics")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="aimctrl-prometheus-") as tmp:
        config = Path(tmp) / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [
                        {"job_name": "aimctrl", "static_configs": [{"targets": [target]}]}
                    ],
                }
            )
        )
        log = (Path(tmp) / "prometheus.log").open("wb")
        proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp}/data",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"

            def series() -> list[dict[str, object]]:
                try:
                    r = httpx.get(
                        f"{base}/api/v1/query",
                        params={"query": 'controller_runtime_reconcile_total{job="aimctrl"}'},
                        timeout=2,
                    )
                except httpx.TransportError:
                    return []
                if r.status_code != 200:
                    return []  # still starting (503)
                result: list[dict[str, object]] = r.json()["data"]["result"]
                return result

            try:
                found = eventually(series, timeout=45, interval=0.5, what="PromQL series")
            except AssertionError as e:
                raise AssertionError(f"{e}\n{(Path(tmp) / 'prometheus.log').read_text()}") from e
            labels = [json.dumps(s["metric"]) for s in found]
            assert all('"result"' in s for s in labels), labels
            up = httpx.get(f"{base}/api/v1/query", params={"query": "up"}, timeout=2).json()
            assert up["data"]["result"][0]["value"][1] == "1"
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            log.close()
