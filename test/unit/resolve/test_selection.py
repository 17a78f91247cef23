from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from aimctrl.api.v1alpha1.enums import Reason, ResolvedScope
from aimctrl.api.v1alpha1.model import AIMClusterModel, AIMModel
from aimctrl.api.v1alpha1.service import AIMService
from aimctrl.api.v1alpha1.template import AIMClusterServiceTemplate, AIMServiceTemplate
from aimctrl.resolve.gpus import Inventory, ModelInventory
from aimctrl.resolve.selection import TemplateSelection, select_template

READY = {"status": "Ready"}


def _degraded(reason: str) -> dict[str, Any]:
    cond = {"type": "Ready", "status": "False", "reason": reason, "message": ""}
    return {"status": "Degraded", "conditions": [cond]}


def _nst(name: str, *, model: str = "llama", status: Any = READY, **spec: Any) -> Any:
    return AIMServiceTemplate.model_validate(
        {
            "metadata": {"name": name, "namespace": "team"},
            "spec": {"modelName": model, **spec},
            "status": status,
        }
    )


def _clt(name: str, *, model: str = "llama", status: Any = READY, **spec: Any) -> Any:
    return AIMClusterServiceTemplate.model_validate(
        {"metadata": {"name": name}, "spec": {"modelName": model, **spec}, "status": status}
    )


def _service(template_ref: str | None = None, selector: dict[str, str] | None = None) -> AIMService:
    spec: dict[str, Any] = {"model": {"ref": "llama"}}
    if template_ref:
        spec["templateRef"] = template_ref
    if selector:
        spec["templateSelector"] = selector
    return AIMService.model_validate(
        {"metadata": {"name": "svc", "namespace": "team"}, "spec": spec}
    )


def _cl_model(default: str | None = None) -> AIMClusterModel:
    spec: dict[str, Any] = {"image": "img:1"}
    if default:
        spec["defaultServiceTemplate"] = default
    return AIMClusterModel.model_validate({"metadata": {"name": "llama"}, "spec": spec})


def _ns_model() -> AIMModel:
    return AIMModel.model_validate(
        {"metadata": {"name": "llama", "namespace": "team"}, "spec": {"image": "img:2"}}
    )


def _select(
    service: AIMService,
    model: AIMModel | AIMClusterModel | None,
    ns: list[AIMServiceTemplate],
    cl: list[AIMClusterServiceTemplate],
    fleet: Inventory | None = None,
) -> TemplateSelection:
    nsd = {(t.metadata.namespace, t.metadata.name): t for t in ns}
    cld = {t.metadata.name: t for t in cl}
    return select_template(
        service,
        model,
        get_namespaced=lambda n, m: nsd.get((n, m)),
        get_cluster=cld.get,
        namespaced_templates=ns,
        cluster_templates=cl,
        fleet=fleet,
    )


def _reasons(sel: TemplateSelection) -> list[tuple[str, bool, str | None]]:
    return [(c.name, c.chosen, c.reason) for c in sel.candidates]


# --- explicit templateRef --------------------------------------------------------------------


def test_template_ref_namespace_template_shadows_cluster_template() -> None:
    sel = _select(_service("t"), _cl_model(), [_nst("t")], [_clt("t")])
    assert isinstance(sel.template, AIMServiceTemplate)
    assert sel.reason == Reason.TEMPLATE_RESOLVED
    assert _reasons(sel) == [
        ("t", True, "chosen: templateRef"),
        ("t", False, "shadowed by AIMServiceTemplate team/t"),
    ]
    assert [c.scope for c in sel.candidates] == [ResolvedScope.NAMESPACE, ResolvedScope.CLUSTER]


def test_template_ref_falls_back_to_cluster_template() -> None:
    sel = _select(_service("t"), _cl_model(), [], [_clt("t")])
    assert isinstance(sel.template, AIMClusterServiceTemplate)
    assert sel.ready


def test_template_ref_missing_is_template_not_found() -> None:
    sel = _select(_service("t"), _cl_model(), [_nst("other")], [])
    assert sel.template is None
    assert sel.reason == Reason.TEMPLATE_NOT_FOUND
    assert "templateRef 't'" in sel.message


def test_template_ref_not_ready_is_chosen_and_waited_for() -> None:
    sel = _select(_service("t"), _cl_model(), [_nst("t", status=_degraded("ModelNotFound"))], [])
    assert sel.template is not None
    assert sel.reason == Reason.TEMPLATE_NOT_READY
    assert not sel.ready
    assert _reasons(sel) == [
        ("t", True, "chosen: templateRef; not Ready: Degraded (ModelNotFound)"),
    ]


def test_template_ref_for_another_model_is_refused() -> None:
    sel = _select(_service("t"), _cl_model(), [_nst("t", model="mistral")], [])
    assert sel.template is None
    assert sel.reason == Reason.TEMPLATE_NOT_FOUND
    assert "runs model mistral, not llama" in sel.message


# --- defaultServiceTemplate ------------------------------------------------------------------


def test_default_service_template_is_honoured_over_a_better_ranked_template() -> None:
    templates = [_nst("best", metric="latency"), _nst("dflt", metric="throughput")]
    sel = _select(_service(), _cl_model(default="dflt"), templates, [])
    assert sel.template is not None
    assert sel.template.metadata.name == "dflt"
    assert _reasons(sel) == [
        ("dflt", True, "chosen: defaultServiceTemplate of AIMClusterModel llama"),
    ]


def test_missing_default_service_template_falls_back_to_automatic_selection() -> None:
    sel = _select(_service(), _cl_model(default="gone"), [_nst("a")], [])
    assert sel.template is not None
    assert sel.template.metadata.name == "a"
    assert ("gone", False, "defaultServiceTemplate not found; selecting automatically") in (
        _reasons(sel)
    )


def test_template_ref_wins_over_default_service_template() -> None:
    sel = _select(_service("a"), _cl_model(default="b"), [_nst("a"), _nst("b")], [])
    assert sel.template is not None
    assert sel.template.metadata.name == "a"


# --- automatic selection ---------------------------------------------------------------------


def test_ranking_namespace_then_latency_then_precision_then_name() -> None:
    ns = [
        _nst("ns-thr-fp4", metric="throughput", precision="fp4"),
        _nst("ns-lat-fp16", metric="latency", precision="fp16"),
        _nst("ns-lat-fp8-b", metric="latency", precision="fp8"),
        _nst("ns-lat-fp8-a", metric="latency", precision="fp8"),
        _nst("ns-lat-none", metric="latency"),
    ]
    cl = [_clt("cl-lat-fp4", metric="latency", precision="fp4")]
    sel = _select(_service(), _cl_model(), list(reversed(ns)), cl)
    assert sel.reason == Reason.TEMPLATE_RESOLVED
    assert _reasons(sel) == [
        ("ns-lat-fp8-a", True, "chosen: best Ready template (namespace, latency, fp8)"),
        ("ns-lat-fp8-b", False, "ranked 2nd: name after ns-lat-fp8-a"),
        ("ns-lat-fp16", False, "ranked 3rd: fp16 after fp8"),
        ("ns-lat-none", False, "ranked 4th: no precision after fp8"),
        ("ns-thr-fp4", False, "ranked 5th: throughput after latency"),
        ("cl-lat-fp4", False, "ranked 6th: cluster after namespace"),
    ]


def test_precision_order_is_explicit() -> None:
    order = ["fp4", "int4", "fp8", "int8", "fp16", "bf16", "fp32", "auto"]
    templates = [_nst(f"t-{p}", metric="latency", precision=p) for p in reversed(order)]
    sel = _select(_service(), _cl_model(), templates, [])
    assert [c.name for c in sel.candidates] == [f"t-{p}" for p in order]


def test_metric_and_precision_fall_back_to_the_profile() -> None:
    profiled = {
        "status": "Ready",
        "profile": {"metadata": {"metric": "latency", "precision": "FP8"}},
    }
    templates = [_nst("a", metric="throughput", precision="fp8"), _nst("b", status=profiled)]
    sel = _select(_service(), _cl_model(), templates, [])
    assert sel.template is not None
    assert sel.template.metadata.name == "b"


def test_not_ready_templates_are_listed_with_their_state() -> None:
    ns = [
        _nst("a", metric="latency", status=_degraded("ModelFailed")),
        _nst("b", metric="throughput"),
        _nst("c", metric="latency", status={"status": "Pending"}),
    ]
    sel = _select(_service(), _cl_model(), ns, [])
    assert sel.template is not None
    assert sel.template.metadata.name == "b"
    assert _reasons(sel) == [
        ("b", True, "chosen: best Ready template (namespace, throughput)"),
        ("a", False, "not Ready: Degraded (ModelFailed)"),
        ("c", False, "not Ready: Pending"),
    ]


def test_nothing_ready_is_no_runnable_template() -> None:
    sel = _select(_service(), _cl_model(), [_nst("a", status={"status": "Progressing"})], [])
    assert sel.template is None
    assert sel.reason == Reason.NO_RUNNABLE_TEMPLATE
    assert sel.message == (
        "no runnable template for model llama: its 1 template(s) need no GPU; "
        "the cluster has no schedulable AMD GPU nodes; 1 not Ready yet"
    )
    assert sel.candidates_dicts() == [
        {"name": "a", "scope": "Namespace", "chosen": False, "reason": "not Ready: Progressing"}
    ]


def test_no_templates_at_all_is_no_runnable_template() -> None:
    sel = _select(_service(), _cl_model(), [_nst("x", model="mistral")], [_clt("y", model="m")])
    assert sel.template is None
    assert sel.reason == Reason.NO_RUNNABLE_TEMPLATE
    assert sel.message == "no templates for model llama"
    assert sel.candidates == ()


def test_cluster_templates_are_not_candidates_for_a_namespaced_model() -> None:
    sel = _select(_service(), _ns_model(), [_nst("ns", metric="throughput")], [_clt("cl")])
    assert sel.template is not None
    assert sel.template.metadata.name == "ns"
    assert ("cl", False, "runs AIMClusterModel llama, shadowed by AIMModel team/llama") in (
        _reasons(sel)
    )


def test_templates_being_deleted_are_not_chosen() -> None:
    dying = _nst("a")
    dying.metadata.deletion_timestamp = datetime(2024, 1, 1, tzinfo=UTC)
    sel = _select(_service(), _cl_model(), [dying], [])
    assert sel.template is None
    assert _reasons(sel) == [("a", False, "being deleted")]


def test_unresolved_model_without_template_ref_selects_nothing() -> None:
    sel = _select(_service(), None, [_nst("a")], [])
    assert sel.template is None
    assert sel.reason == Reason.NO_RUNNABLE_TEMPLATE


@pytest.mark.parametrize("order", [lambda x: x, lambda x: list(reversed(x))])
def test_selection_does_not_depend_on_input_order(order: Any) -> None:
    ns = [_nst(n, metric="latency", precision="fp8") for n in ("c", "a", "b")]
    sel = _select(_service(), _cl_model(), order(ns), [])
    assert [c.name for c in sel.candidates] == ["a", "b", "c"]


# --- SPEC §6's order, one case per rule (GPU fleet, SPEC §8) ---------------------------------

MI300X_FLEET = Inventory({"MI300X": ModelInventory("MI300X", 2, 8, 16)})


def _not_available(gpu: str, count: int) -> dict[str, Any]:
    message = f"needs {count} x {gpu}; the cluster has MI300X (8 per node)"
    return {
        "status": "NotAvailable",
        "conditions": [
            {
                "type": "GPUAvailable",
                "status": "False",
                "reason": "GPUNotInCluster",
                "message": message,
            },
            {"type": "Ready", "status": "False", "reason": "GPUNotInCluster", "message": message},
        ],
    }


def _gpu(model: str, count: int = 1) -> dict[str, Any]:
    return {"gpuSelector": {"model": model, "count": count}}


@pytest.mark.parametrize(
    ("rule", "service", "ns", "cl", "winner", "loser_reason"),
    [
        (
            "ready-only: NotAvailable never chosen, even on a better GPU",
            _service(),
            [
                _nst("a-mi355x", status=_not_available("MI355X", 8), **_gpu("MI355X", 8)),
                _nst("b-mi300x", **_gpu("MI300X")),
            ],
            [],
            "b-mi300x",
            ("a-mi355x", "NotAvailable: needs 8 x MI355X"),
        ),
        (
            "templateSelector filters before ranking",
            _service(selector={"gpuModel": "mi300x", "precision": "fp16"}),
            [
                _nst("a-fp8", precision="fp8", **_gpu("MI300X")),
                _nst("b-fp16", precision="fp16", **_gpu("MI300X")),
            ],
            [],
            "b-fp16",
            ("a-fp8", "templateSelector: wants precision fp16, template has fp8"),
        ),
        (
            "namespace before cluster, even on a worse GPU",
            _service(),
            [_nst("ns-mi210", **_gpu("MI210"))],
            [_clt("cl-mi355x", **_gpu("MI355X"))],
            "ns-mi210",
            ("cl-mi355x", "ranked 2nd: cluster after namespace"),
        ),
        (
            "GPU tier before metric",
            _service(),
            [
                _nst("a-mi300x-lat", metric="latency", **_gpu("MI300X")),
                _nst("b-mi325x-thr", metric="throughput", **_gpu("MI325X")),
            ],
            [],
            "b-mi325x-thr",
            ("a-mi300x-lat", "ranked 2nd: MI300X after MI325X"),
        ),
        (
            "metric before precision",
            _service(),
            [
                _nst("a-thr-fp4", metric="throughput", precision="fp4", **_gpu("MI300X")),
                _nst("b-lat-fp16", metric="latency", precision="fp16", **_gpu("MI300X")),
            ],
            [],
            "b-lat-fp16",
            ("a-thr-fp4", "ranked 2nd: throughput after latency"),
        ),
        (
            "precision before name",
            _service(),
            [
                _nst("a-fp16", metric="latency", precision="fp16", **_gpu("MI300X")),
                _nst("b-fp8", metric="latency", precision="fp8", **_gpu("MI300X")),
            ],
            [],
            "b-fp8",
            ("a-fp16", "ranked 2nd: fp16 after fp8"),
        ),
        (
            "name last",
            _service(),
            [_nst("b", **_gpu("MI300X")), _nst("a", **_gpu("MI300X"))],
            [],
            "a",
            ("b", "ranked 2nd: name after a"),
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and " " in v else "",
)
def test_selection_order_one_rule_at_a_time(
    rule: str,
    service: AIMService,
    ns: list[AIMServiceTemplate],
    cl: list[AIMClusterServiceTemplate],
    winner: str,
    loser_reason: tuple[str, str],
) -> None:
    sel = _select(service, _cl_model(), ns, cl, MI300X_FLEET)
    assert sel.reason == Reason.TEMPLATE_RESOLVED, rule
    assert sel.template is not None
    assert sel.template.metadata.name == winner
    assert loser_reason in [(name, reason) for name, _, reason in _reasons(sel)]


def test_gpu_tier_ranks_the_instinct_generations_newest_first() -> None:
    tiers = ["MI355X", "MI350X", "MI325X", "MI300X", "MI308X", "MI300A", "MI250X", "MI210", "X1"]
    templates = [_nst(f"t-{g.lower()}", **_gpu(g)) for g in reversed(tiers)]
    sel = _select(_service(), _cl_model(), templates, [])
    assert [c.name for c in sel.candidates] == [f"t-{g.lower()}" for g in tiers]


def test_only_not_available_templates_is_no_runnable_template_naming_needs_and_fleet() -> None:
    ns = [
        _nst("a", status=_not_available("MI355X", 8), **_gpu("MI355X", 8)),
        _nst("b", status=_not_available("MI355X", 1), **_gpu("MI355X", 1)),
    ]
    sel = _select(_service(), _cl_model(), ns, [], MI300X_FLEET)
    assert sel.template is None
    assert sel.reason == Reason.NO_RUNNABLE_TEMPLATE
    assert sel.message == (
        "no runnable template for model llama: its 2 template(s) need 1 x MI355X, 8 x MI355X; "
        "the cluster has MI300X (8 per node)"
    )
    assert _reasons(sel) == [
        ("a", False, "NotAvailable: needs 8 x MI355X"),
        ("b", False, "NotAvailable: needs 1 x MI355X"),
    ]


def test_selector_matching_nothing_is_no_runnable_template_and_says_which_selector() -> None:
    sel = _select(
        _service(selector={"gpuModel": "MI355X"}),
        _cl_model(),
        [_nst("a", **_gpu("MI300X"))],
        [],
        MI300X_FLEET,
    )
    assert sel.reason == Reason.NO_RUNNABLE_TEMPLATE
    assert sel.message.endswith("; templateSelector gpuModel=MI355X")
    assert _reasons(sel) == [
        ("a", False, "templateSelector: wants gpuModel MI355X, template has MI300X")
    ]


def test_template_ref_that_is_not_available_waits_with_template_not_available() -> None:
    ns = [_nst("big", status=_not_available("MI355X", 8), **_gpu("MI355X", 8))]
    sel = _select(_service("big"), _cl_model(), ns, [], MI300X_FLEET)
    assert sel.template is not None
    assert sel.reason == Reason.TEMPLATE_NOT_AVAILABLE
    assert sel.message == (
        "AIMServiceTemplate team/big (templateRef) cannot run here: "
        "needs 8 x MI355X; the cluster has MI300X (8 per node)"
    )
    assert _reasons(sel) == [("big", True, "chosen: templateRef; NotAvailable: needs 8 x MI355X")]
