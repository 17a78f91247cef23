from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from aimctrl.api.v1alpha1.common import ResourceRequirements
from aimctrl.api.v1alpha1.model import AIMClusterModel
from aimctrl.api.v1alpha1.service import AIMService
from aimctrl.api.v1alpha1.template import AIMServiceTemplate
from aimctrl.resolve.resources import (
    fill_gpu,
    is_extended_resource,
    merge_resources,
    quantity_value,
    resolved_resources_dict,
)

GPU = "amd.com/gpu"


def _rr(d: dict[str, Any] | None) -> ResourceRequirements | None:
    return None if d is None else ResourceRequirements.model_validate(d)


@pytest.mark.parametrize(
    ("service", "template", "model", "expected"),
    [
        (
            {"requests": {"cpu": "2"}, "limits": {"memory": "8Gi"}},
            None,
            None,
            {"requests": {"cpu": "2"}, "limits": {"memory": "8Gi"}},
        ),
        (None, {"requests": {"cpu": 4}}, None, {"requests": {"cpu": "4"}}),
        (None, None, {"limits": {"memory": "16Gi"}}, {"limits": {"memory": "16Gi"}}),
        (
            {"requests": {"cpu": "8"}},
            {"requests": {"cpu": "4", "memory": "32Gi"}, "limits": {"memory": "48Gi"}},
            {"requests": {"cpu": "1", "ephemeral-storage": "10Gi"}, "limits": {"memory": "64Gi"}},
            {
                "requests": {"cpu": "8", "ephemeral-storage": "10Gi", "memory": "32Gi"},
                "limits": {"memory": "48Gi"},
            },
        ),
        (None, None, None, {}),
        (
            {"requests": {"memory": "64Gi"}},
            {"limits": {"memory": "32Gi"}},
            None,
            {"requests": {"memory": "64Gi"}, "limits": {"memory": "64Gi"}},
        ),
        (
            {"limits": {"memory": "16Gi"}},
            None,
            {"requests": {"memory": "32Gi"}},
            {"requests": {"memory": "16Gi"}, "limits": {"memory": "16Gi"}},
        ),
        (
            {"requests": {"memory": "16Gi"}},
            None,
            {"limits": {"memory": "32Gi"}},
            {"requests": {"memory": "16Gi"}, "limits": {"memory": "32Gi"}},
        ),
        (
            {"requests": {"memory": "64Gi"}, "limits": {"memory": "32Gi"}},
            None,
            None,
            {"requests": {"memory": "64Gi"}, "limits": {"memory": "32Gi"}},
        ),
        (
            {"requests": {GPU: "2"}},
            {"limits": {GPU: "1"}},
            None,
            {"requests": {GPU: "2"}, "limits": {GPU: "2"}},
        ),
    ],
    ids=[
        "service-only",
        "template-only-int-normalised",
        "model-only",
        "mixed-per-resource-name",
        "nothing",
        "inherited-limit-raised-to-higher-request",
        "inherited-request-capped-by-higher-limit",
        "consistent-values-kept",
        "one-layer-contradiction-left-alone",
        "extended-resource-higher-layer-wins-both",
    ],
)
def test_merge_resources_precedence(
    service: dict[str, Any] | None,
    template: dict[str, Any] | None,
    model: dict[str, Any] | None,
    expected: dict[str, Any],
) -> None:
    merged = merge_resources(service=_rr(service), template=_rr(template), model=_rr(model))
    assert merged.to_dict() == expected


def _per_gpu(n: int, **extra: dict[str, str]) -> dict[str, Any]:
    """What rule 4 adds for ``n`` GPUs, merged with ``extra`` sections."""
    out: dict[str, Any] = {
        "requests": {"cpu": str(4 * n), "memory": f"{32 * n}Gi"},
        "limits": {"memory": f"{48 * n}Gi"},
    }
    for section, values in extra.items():
        out[section] = {**out[section], **values}
    return out


@pytest.mark.parametrize(
    ("resources", "gpu_count", "expected"),
    [
        (
            {"requests": {"cpu": "4"}},
            2,
            {
                "requests": {GPU: "2", "cpu": "4", "memory": "64Gi"},
                "limits": {GPU: "2", "memory": "96Gi"},
            },
        ),
        ({"requests": {GPU: "4"}}, 1, _per_gpu(4, requests={GPU: "4"}, limits={GPU: "4"})),
        ({"limits": {GPU: "4"}}, 1, _per_gpu(4, requests={GPU: "4"}, limits={GPU: "4"})),
        (
            {"requests": {GPU: "2"}, "limits": {GPU: "3"}},
            1,
            _per_gpu(3, requests={GPU: "3"}, limits={GPU: "3"}),
        ),
        (
            {"requests": {GPU: "2"}, "limits": {GPU: "2"}},
            8,
            _per_gpu(2, requests={GPU: "2"}, limits={GPU: "2"}),
        ),
        # SPEC §6: a GPU resource of another vendor set by the user is respected; no amd.com/gpu.
        (
            {"limits": {"nvidia.com/gpu": "1"}},
            8,
            _per_gpu(1, requests={"nvidia.com/gpu": "1"}, limits={"nvidia.com/gpu": "1"}),
        ),
        # Defaults stay within what is set: a request never above a set limit, a limit never
        # below a set request.
        (
            {"limits": {"cpu": "2"}, "requests": {"memory": "100Gi"}},
            1,
            {
                "requests": {GPU: "1", "cpu": "2", "memory": "100Gi"},
                "limits": {GPU: "1", "cpu": "2", "memory": "100Gi"},
            },
        ),
        ({"requests": {"cpu": "1"}}, None, {"requests": {"cpu": "1"}}),
        ({}, 0, {}),
    ],
    ids=[
        "filled-from-gpu-count-in-both-with-per-gpu-defaults",
        "request-copied-to-limit",
        "limit-copied-to-request",
        "conflict-limit-wins",
        "already-set-kept",
        "other-vendor-gpu-respected",
        "defaults-clamped-to-set-values",
        "no-count-left-unset",
        "zero-count-left-unset",
    ],
)
def test_fill_gpu(
    resources: dict[str, Any], gpu_count: int | None, expected: dict[str, Any]
) -> None:
    result = fill_gpu(ResourceRequirements.model_validate(resources), gpu_count=gpu_count)
    assert result.to_dict() == expected


def test_fill_gpu_uses_the_given_resource_name() -> None:
    result = fill_gpu(ResourceRequirements(), resource_name="nvidia.com/gpu", gpu_count=1)
    assert result.to_dict() == _per_gpu(
        1, requests={"nvidia.com/gpu": "1"}, limits={"nvidia.com/gpu": "1"}
    )


def _template(spec: dict[str, Any], profile_count: int | None) -> AIMServiceTemplate:
    status: dict[str, Any] = {"status": "Ready"}
    if profile_count is not None:
        status["profile"] = {"metadata": {"gpu_count": profile_count}}
    return AIMServiceTemplate.model_validate(
        {
            "metadata": {"name": "t", "namespace": "team"},
            "spec": {"modelName": "m", **spec},
            "status": status,
        }
    )


def _service(resources: dict[str, Any] | None) -> AIMService:
    spec: dict[str, Any] = {"model": {"ref": "m"}}
    if resources is not None:
        spec["resources"] = resources
    return AIMService.model_validate({"metadata": {"name": "s", "namespace": "team"}, "spec": spec})


def test_resolved_resources_fill_the_gpu_from_the_template_profile() -> None:
    model = AIMClusterModel.model_validate(
        {
            "metadata": {"name": "m"},
            "spec": {"image": "i:1", "resources": {"requests": {"memory": "16Gi"}}},
        }
    )
    template = _template({"resources": {"requests": {"cpu": "4"}}}, profile_count=2)
    result = resolved_resources_dict(
        service=_service({"limits": {"memory": "48Gi"}}), template=template, model=model
    )
    assert result == {
        "requests": {GPU: "2", "cpu": "4", "memory": "16Gi"},
        "limits": {GPU: "2", "memory": "48Gi"},
    }


def test_resolved_resources_keep_a_gpu_request_the_service_set() -> None:
    template = _template({"gpuSelector": {"model": "MI300X", "count": 8}}, profile_count=8)
    result = resolved_resources_dict(
        service=_service({"limits": {GPU: "1"}}), template=template, model=None
    )
    assert result == _per_gpu(1, requests={GPU: "1"}, limits={GPU: "1"})


def test_resolved_resources_use_the_selector_resource_name_and_count_without_profile() -> None:
    spec = {"gpuSelector": {"count": 2, "resourceName": "amd.com/gpu-partition"}}
    result = resolved_resources_dict(
        service=_service(None), template=_template(spec, None), model=None
    )
    partition = {"amd.com/gpu-partition": "2"}
    assert result == _per_gpu(2, requests=partition, limits=partition)


@pytest.mark.parametrize(
    ("quantity", "value"),
    [
        ("500m", Decimal("0.5")),
        ("1Gi", Decimal(2**30)),
        ("2k", Decimal(2000)),
        ("1e3", Decimal(1000)),
        ("1.5", Decimal("1.5")),
        ("12Qi", None),
        ("abc", None),
    ],
)
def test_quantity_value(quantity: str, value: Decimal | None) -> None:
    assert quantity_value(quantity) == value


@pytest.mark.parametrize(
    ("name", "extended"),
    [
        ("amd.com/gpu", True),
        ("cpu", False),
        ("hugepages-2Mi", False),
        ("kubernetes.io/foo", False),
        ("example.kubernetes.io/foo", False),
    ],
)
def test_is_extended_resource(name: str, extended: bool) -> None:
    assert is_extended_resource(name) is extended
