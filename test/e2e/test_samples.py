"""The seed's examples end to end: models Ready, the private image, a service by image, describe.

The objects are hack/samples-dev (the seed's config/samples with images on the test registries),
applied the way hack/run-local.sh applies them: the pull Secret from the registry credentials,
then the manifests with ``${REGISTRY}`` and ``${REGISTRY_AUTH}`` filled in.
"""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from aimctrl.testing.helpers import Kubectl, eventually

from .conftest import ROOT, Installation

SAMPLES = ROOT / "hack" / "samples-dev"
TEAM = "ml-team"


def render_samples(refs: dict[str, str]) -> str:
    registry = refs["good"].split("/", 1)[0]
    registry_auth = refs["private"].split("/", 1)[0]
    docs = [p.read_text() for p in sorted(SAMPLES.glob("[1-9]*.yaml"))]
    text = "\n---\n".join(docs)
    return text.replace("${REGISTRY_AUTH}", registry_auth).replace("${REGISTRY}", registry)


@pytest.fixture(scope="module")
def samples(installation: Installation) -> Kubectl:
    k = installation.kubectl
    k("apply", "-f", str(SAMPLES / "00-namespace.yaml"))
    reg = installation.registry
    auth = base64.b64encode(f"{reg.user}:{reg.password}".encode()).decode()
    config = json.dumps({"auths": {reg.auth_registry: {"auth": auth}}})
    k.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "private-registry", "namespace": TEAM},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64.b64encode(config.encode()).decode()},
        }
    )
    k("apply", "-f", "-", input=render_samples(reg.refs))
    return k


def _wait_ready(k: Kubectl, obj: str, *, namespace: str | None = None) -> None:
    """Like ``kubectl wait --for=condition=Ready``, but a Failed object fails at once."""
    ns = ["-n", namespace] if namespace else []

    def state() -> str:
        status = k.json(*ns, "get", obj).get("status") or {}
        ready = [c for c in status.get("conditions", []) if c["type"] == "Ready"]
        if ready and ready[0]["status"] == "True":
            return "Ready"
        if status.get("status") == "Failed":
            return "Failed"
        return ""

    try:
        final = eventually(state, timeout=120, interval=0.5, what=f"{obj} Ready")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{k.run(*ns, 'describe', obj, check=False).stdout}") from e
    assert final == "Ready", k.run(*ns, "describe", obj, check=False).stdout


def test_the_seed_cluster_model_is_discovered_and_ready(samples: Kubectl) -> None:
    _wait_ready(samples, "aimclustermodel/meta-llama-3-8b-instruct")
    # What a user types: kubectl's own wait on the Ready condition returns at once now.
    waited = samples.run(
        "wait", "--for=condition=Ready", "aimclustermodel/meta-llama-3-8b-instruct", "--timeout=30s"
    )
    assert "condition met" in waited.stdout, waited.stdout
    model = samples.json("get", "aimclustermodel", "meta-llama-3-8b-instruct")
    assert model["status"]["status"] == "Ready"
    canonical = model["status"]["imageMetadata"]["model"]["canonicalName"]
    assert canonical == "meta-llama/Llama-3.1-8B-Instruct"
    templates = samples.json(
        "get", "aimclusterservicetemplates", "-l", "aim.silogen.ai/model=meta-llama-3-8b-instruct"
    )["items"]
    assert len(templates) == 4, [t["metadata"]["name"] for t in templates]


def test_the_seed_team_model_without_discovery_is_ready(samples: Kubectl) -> None:
    _wait_ready(samples, "aimmodel/meta-llama-3-8b-dev", namespace=TEAM)
    _wait_ready(samples, "aimservicetemplate/custom-template-name", namespace=TEAM)


def test_the_private_image_model_is_discovered_with_the_runtime_configs_pull_secret(
    samples: Kubectl,
) -> None:
    _wait_ready(samples, "aimmodel/proprietary-model", namespace=TEAM)
    model = samples.json("get", "aimmodel", "proprietary-model", "-n", TEAM)
    assert model["status"]["resolvedRuntimeConfig"]["name"] == "default"


def test_a_service_by_image_creates_its_model_and_becomes_ready(samples: Kubectl) -> None:
    _wait_ready(samples, "aimservice/my-service", namespace=TEAM)
    service = samples.json("get", "aimservice", "my-service", "-n", TEAM)
    model = service["status"]["resolvedModel"]["name"]
    assert model.startswith("auto-")
    created = samples.json("get", "aimclustermodel", model)
    assert created["metadata"]["labels"]["aim.silogen.ai/auto-created"] == "true"
    deployment = samples.json("get", "deployment", "my-service", "-n", TEAM)
    assert deployment["status"].get("availableReplicas") == 1


def test_a_service_by_ref_gets_a_template_and_its_gpu_count(samples: Kubectl) -> None:
    _wait_ready(samples, "aimservice/llama-chat", namespace=TEAM)
    service = samples.json("get", "aimservice", "llama-chat", "-n", TEAM)
    limits = service["status"]["resolvedResources"]["limits"]
    assert "amd.com/gpu" in limits
    assert limits["memory"] == "64Gi"


def test_describe_shows_conditions_and_transition_events(samples: Kubectl) -> None:
    _wait_ready(samples, "aimclustermodel/meta-llama-3-8b-instruct")
    text = samples("describe", "aimclustermodel", "meta-llama-3-8b-instruct")
    for word in ("Conditions:", "MetadataExtracted", "TemplatesAutoGenerated", "Events:"):
        assert word in text, text
    events = samples.json(
        "get",
        "events",
        "-A",
        "--field-selector",
        "involvedObject.kind=AIMClusterModel,involvedObject.name=meta-llama-3-8b-instruct",
    )["items"]
    assert events, text
    # Events mark transitions, never every reconcile: each reason appears a bounded number of times.
    assert all(e.get("count", 1) <= 3 for e in events), [
        (e["reason"], e.get("count")) for e in events
    ]


def test_every_controller_counts_its_reconciles(
    samples: Kubectl, installation: Installation
) -> None:
    _wait_ready(samples, "aimservice/llama-chat", namespace=TEAM)

    def counted() -> dict[str, float]:
        totals: dict[str, float] = {}
        for line in httpx.get(installation.metrics_url, timeout=5).text.splitlines():
            if (
                line.startswith("controller_runtime_reconcile_total{")
                and 'result="success"' in line
            ):
                name = line.split('controller="', 1)[1].split('"', 1)[0]
                totals[name] = float(line.rsplit(" ", 1)[1])
        return totals

    totals = eventually(counted, timeout=30, what="reconcile counters")
    assert totals
    assert all(v > 0 for v in totals.values()), totals


# -- the GPU fleet (SPEC §8): the dev cluster's mixed AMD fleet has no MI355X ---------------------

MIXED = "llama-3-3-70b-instruct"


def test_kubectl_get_shows_not_available_templates_next_to_ready_ones(samples: Kubectl) -> None:
    _wait_ready(samples, f"aimclustermodel/{MIXED}")
    model = samples.json("get", "aimclustermodel", MIXED)
    ready = next(c for c in model["status"]["conditions"] if c["type"] == "Ready")
    assert ready["message"].startswith("2 of 4 template(s) can run on this cluster"), ready
    # What a user sees: the Status column, without -o json.
    table = samples("get", "aimclst", "-l", f"aim.silogen.ai/model={MIXED}", "--no-headers")
    statuses = sorted(line.split()[1] for line in table.splitlines() if line.strip())
    assert statuses == ["NotAvailable", "NotAvailable", "Ready", "Ready"], table
    wide = samples("get", "aimclst", "-l", f"aim.silogen.ai/model={MIXED}", "-o", "wide")
    assert "needs 8 x MI355X; the cluster has MI210 (4 per node), MI300X (8 per node)" in wide


def test_a_service_runs_the_best_template_the_fleet_can_run_on_a_gpu_node(
    samples: Kubectl,
) -> None:
    _wait_ready(samples, "aimservice/llama-70b", namespace=TEAM)
    service = samples.json("get", "aimservice", "llama-70b", "-n", TEAM)
    assert "-1x-mi300x-lat-fp8-" in service["status"]["resolvedTemplate"]["name"]
    rejected = [c["reason"] for c in service["status"]["templateCandidates"] if not c["chosen"]]
    assert "NotAvailable: needs 1 x MI355X" in rejected, rejected
    pods = samples.json("get", "pods", "-n", TEAM, "-l", "aim.silogen.ai/service=llama-70b")
    nodes = [p["spec"].get("nodeName") for p in pods["items"]]
    assert nodes, pods
    assert all(str(n).startswith("kwok-mi300x-") for n in nodes), nodes


def test_a_service_asking_for_missing_gpus_waits_and_says_why(samples: Kubectl) -> None:
    def reason() -> str:
        service = samples.json("get", "aimservice", "llama-70b-mi355x", "-n", TEAM)
        conditions = (service.get("status") or {}).get("conditions", [])
        return next((c["reason"] for c in conditions if c["type"] == "Ready"), "")

    eventually(lambda: reason() == "NoRunnableTemplate", timeout=120, what="NoRunnableTemplate")
    service = samples.json("get", "aimservice", "llama-70b-mi355x", "-n", TEAM)
    assert service["status"]["status"] == "Pending"
    message = next(c for c in service["status"]["conditions"] if c["type"] == "Ready")["message"]
    assert "1 x MI355X" in message, message
    assert "the cluster has MI210 (4 per node)" in message, message
    assert message.endswith("templateSelector gpuModel=MI355X"), message
    pods = samples.json("get", "pods", "-n", TEAM, "-l", "aim.silogen.ai/service=llama-70b-mi355x")
    assert pods["items"] == []
