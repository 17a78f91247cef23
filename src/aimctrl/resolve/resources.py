"""Resource requirements of a service's workload (SPEC §6): pure functions, no I/O.

Rules, applied in this order:

1. **Precedence per resource name**, separately for requests and limits: service > template >
   model. A layer that sets ``limits.memory`` only does not drop the ``requests.cpu`` of a
   lower layer.
2. **Consistency across layers**: when a request and a limit of the same resource come from
   *different* layers and contradict each other, the higher-precedence layer wins: for an
   extended resource (``amd.com/gpu``: request must equal limit) its value is used for both;
   for a native one (cpu, memory, …) an inherited limit below the request is raised to it, an
   inherited request above the limit is lowered to it. Values set by one layer are left as they
   are (the API server reports its own contradictions).
3. **GPU**: when no layer sets a GPU resource (no resource name ending in ``/gpu``, so a user's
   ``nvidia.com/gpu`` is respected and no second GPU kind is added), the template's resource
   (``gpuSelector.resourceName``, default ``amd.com/gpu``) is set in both requests and limits to
   the template's ``status.profile.metadata.gpu_count`` (or ``gpuSelector.count`` while no
   profile exists). A GPU resource set in one of requests and limits only is copied to the
   other; set in both with different values, the limit wins. Afterwards requests and limits of
   every GPU resource are equal.
4. **CPU and memory per GPU**: with ``n`` GPUs, ``requests.cpu`` left unset is ``4n``,
   ``requests.memory`` ``32n Gi`` and ``limits.memory`` ``48n Gi`` — each kept within what is
   set (a default request never exceeds a set limit; a default limit never falls below a set
   request).

Quantities stay Kubernetes quantity strings; integers become their decimal string. Resource
names are sorted, and an empty requests or limits map is omitted.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from aimctrl.api.v1alpha1.common import ResourceRequirements
from aimctrl.api.v1alpha1.service import AIMService
from aimctrl.api.v1alpha1.template import DEFAULT_GPU_RESOURCE
from aimctrl.resolve.templates import AnyModel, AnyTemplate

__all__ = [
    "fill_gpu",
    "is_extended_resource",
    "merge_resources",
    "quantity_value",
    "resolved_resources",
    "resolved_resources_dict",
]

_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(.*)$")
_MULTIPLIERS: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_EXPONENT = re.compile(r"^[eE][+-]?\d+$")

# (value, rank of the layer it came from; 0 = service, the highest precedence)
_Entry = tuple[str, int]


def quantity_value(quantity: str) -> Decimal | None:
    """The numeric value of a Kubernetes quantity (``"500m"`` → 0.5, ``"1Gi"`` → 1073741824),
    or None when it is not one."""
    match = _QUANTITY.match(quantity.strip())
    if match is None:
        return None
    number, suffix = match.groups()
    try:
        if _EXPONENT.match(suffix):
            return Decimal(number + suffix)
        multiplier = _MULTIPLIERS.get(suffix)
        return None if multiplier is None else Decimal(number) * multiplier
    except InvalidOperation:
        return None


def _equal(a: str, b: str) -> bool:
    va, vb = quantity_value(a), quantity_value(b)
    return a == b if va is None or vb is None else va == vb


def is_extended_resource(name: str) -> bool:
    """A domain-prefixed resource outside ``kubernetes.io`` (``amd.com/gpu``): the API requires
    its request to equal its limit."""
    if "/" not in name:
        return False
    domain = name.split("/", 1)[0]
    return not (domain == "kubernetes.io" or domain.endswith(".kubernetes.io"))


def _by_precedence(
    layers: tuple[ResourceRequirements | None, ...], section: str
) -> dict[str, _Entry]:
    picked: dict[str, _Entry] = {}
    for rank, layer in enumerate(layers):
        values: dict[str, str] | None = getattr(layer, section) if layer else None
        for name, value in (values or {}).items():
            picked.setdefault(name, (str(value), rank))
    return picked


def _reconcile(requests: dict[str, _Entry], limits: dict[str, _Entry]) -> None:
    """Rule 2: where a request and a limit from different layers contradict, the higher wins."""
    for name in sorted(set(requests) & set(limits)):
        (req, req_rank), (lim, lim_rank) = requests[name], limits[name]
        if req_rank == lim_rank:
            continue
        higher = requests[name] if req_rank < lim_rank else limits[name]
        if is_extended_resource(name):
            if not _equal(req, lim):
                requests[name] = limits[name] = higher
            continue
        req_value, lim_value = quantity_value(req), quantity_value(lim)
        if req_value is not None and lim_value is not None and req_value > lim_value:
            requests[name] = limits[name] = higher


def _build(requests: dict[str, str], limits: dict[str, str]) -> ResourceRequirements:
    return ResourceRequirements(
        requests={k: requests[k] for k in sorted(requests)} or None,
        limits={k: limits[k] for k in sorted(limits)} or None,
    )


def merge_resources(
    *,
    service: ResourceRequirements | None,
    template: ResourceRequirements | None,
    model: ResourceRequirements | None,
) -> ResourceRequirements:
    """Rules 1 and 2: per resource name, service > template > model, then cross-layer
    request/limit contradictions settled in favour of the higher layer."""
    layers = (service, template, model)
    requests = _by_precedence(layers, "requests")
    limits = _by_precedence(layers, "limits")
    _reconcile(requests, limits)
    return _build(
        {k: v for k, (v, _) in requests.items()},
        {k: v for k, (v, _) in limits.items()},
    )


def _is_gpu(name: str) -> bool:
    return name.endswith("/gpu")


def fill_gpu(
    resources: ResourceRequirements,
    *,
    resource_name: str = DEFAULT_GPU_RESOURCE,
    gpu_count: int | None,
) -> ResourceRequirements:
    """Rules 3 and 4: the GPU resource from ``gpu_count`` when none is set (a ``gpu_count`` of
    None or 0 adds none), requests equal to limits for every GPU resource, then the CPU and
    memory defaults per GPU."""
    requests = dict(resources.requests or {})
    limits = dict(resources.limits or {})
    gpu_names = sorted({n for n in (*requests, *limits) if _is_gpu(n)})
    if not gpu_names and gpu_count:
        requests[resource_name] = limits[resource_name] = str(gpu_count)
        gpu_names = [resource_name]
    for name in gpu_names:
        request, limit = requests.get(name), limits.get(name)
        if request is None and limit is not None:
            requests[name] = limit
        elif limit is None and request is not None:
            limits[name] = request
        elif request is not None and limit is not None and not _equal(request, limit):
            requests[name] = limit
    primary = resource_name if resource_name in gpu_names else next(iter(gpu_names), None)
    gpus = quantity_value(limits[primary]) if primary else None
    if gpus is not None and gpus > 0:
        _default_per_gpu(requests, limits, gpus)
    return _build(requests, limits)


_GI = Decimal(2**30)


def _format(value: Decimal, unit: str) -> str:
    if unit == "Gi":
        whole = value / _GI
        return f"{whole.normalize():f}Gi" if whole == whole.to_integral_value() else str(int(value))
    return f"{value.normalize():f}"


def _default_per_gpu(requests: dict[str, str], limits: dict[str, str], gpus: Decimal) -> None:
    """Rule 4, in place."""
    defaults = (
        (requests, "cpu", Decimal(4) * gpus, ""),
        (requests, "memory", Decimal(32) * gpus * _GI, "Gi"),
        (limits, "memory", Decimal(48) * gpus * _GI, "Gi"),
    )
    for section, name, value, unit in defaults:
        if name in section:
            continue
        if section is requests and name in limits:
            cap = quantity_value(limits[name])
            if cap is not None and cap < value:
                section[name] = limits[name]
                continue
        if section is limits and name in requests:
            floor = quantity_value(requests[name])
            if floor is not None and floor > value:
                section[name] = requests[name]
                continue
        section[name] = _format(value, unit)


def resolved_resources(
    *, service: AIMService, template: AnyTemplate, model: AnyModel | None
) -> ResourceRequirements:
    """The workload's resources: :func:`merge_resources` of the three objects' ``spec.resources``,
    then :func:`fill_gpu` with the template's GPU resource name and profile GPU count."""
    merged = merge_resources(
        service=service.spec.resources,
        template=template.spec.resources,
        model=model.spec.resources if model else None,
    )
    selector = template.spec.gpu_selector
    profile = template.status.profile.metadata if template.status.profile else None
    gpu_count = profile.gpu_count if profile and profile.gpu_count else None
    if gpu_count is None and selector is not None:
        gpu_count = selector.count
    resource_name = selector.resource_name if selector else DEFAULT_GPU_RESOURCE
    return fill_gpu(merged, resource_name=resource_name, gpu_count=gpu_count)


def resolved_resources_dict(
    *, service: AIMService, template: AnyTemplate, model: AnyModel | None
) -> dict[str, Any]:
    """``status.resolvedResources`` as JSON: {requests, limits} of quantity strings."""
    return resolved_resources(service=service, template=template, model=model).to_dict()
